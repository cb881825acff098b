/**
 * `npm run keys -- <command>`: API keys of the database in DATABASE_URL (or the embedded PostgreSQL that
 * `npm start` runs, which must be up). A key is shown once, when it is created; only its hash is stored.
 *
 *   create --org <org> [--name <name>]   a new key for an organisation
 *   list [--org <org>]                   keys (prefix, name, org, revoked?), never the keys themselves
 *   revoke <id>                          revoke a key by id
 *   generate                             a random value for API_KEY (nothing is stored)
 */
import { Command } from 'commander';
import { createApiKey, generateApiKey, listApiKeys, revokeApiKey } from '../lib/api-keys';
import { config, databaseUrl } from '../lib/config';
import { createPool, migrate, type Db } from '../lib/db';

async function withDb<T>(fn: (db: Db) => Promise<T>): Promise<T> {
  const url = databaseUrl(config());
  await migrate(url);
  const db = createPool(url, 1);
  try {
    return await fn(db);
  } finally {
    await db.end();
  }
}

const program = new Command('keys').description('Manage API keys (Authorization: Bearer <key>)').showHelpAfterError();

program
  .command('create')
  .description('create a key for an organisation and print it once')
  .requiredOption('--org <org>', 'organisation the key acts in')
  .option('--name <name>', 'what the key is for', '')
  .action(async (opts: { org: string; name: string }) => {
    const { key, record } = await withDb((db) => createApiKey(db, opts.org, opts.name));
    console.log(
      `Created key ${record.id} (${record.prefix}…) for org "${record.orgId}". It is shown only now:\n\n  ${key}\n`,
    );
    console.log(`Use it as: curl -H 'Authorization: Bearer ${key}' http://127.0.0.1:${config().PORT}/api/v1/agents`);
  });

program
  .command('list')
  .description('list keys (never the keys themselves)')
  .option('--org <org>', 'only this organisation')
  .action(async (opts: { org?: string }) => {
    const keys = await withDb((db) => listApiKeys(db, opts.org));
    for (const k of keys)
      console.log(
        `${k.id}  ${k.prefix}…  org=${k.orgId}  ${k.name ? `"${k.name}"  ` : ''}${k.revokedAt ? `revoked ${k.revokedAt}` : 'active'}`,
      );
    if (keys.length === 0) console.log('no keys');
  });

program
  .command('revoke <id>')
  .description('revoke a key by id')
  .action(async (id: string) => {
    const revoked = await withDb((db) => revokeApiKey(db, id));
    console.log(revoked ? `revoked ${id}` : `no active key with id ${id}`);
    if (!revoked) process.exitCode = 1;
  });

program
  .command('generate')
  .description('print a random key to use as API_KEY (stored nowhere)')
  .action(() => console.log(generateApiKey()));

program.parseAsync().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
