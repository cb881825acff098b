/**
 * The MCP server config a tenant sets on an agent, and the server-name rule behind `mcp__<server>__<tool>`.
 * Kept in lib/ because the API's request schemas (lib/models.ts) validate agent bodies with it, as the MCP
 * client (activities/tools/mcp.ts) does before connecting.
 */
import { z } from 'zod';

const SERVER_NAME = /^[a-zA-Z0-9_-]{1,32}$/;

/** Server names must keep `mcp__<server>__<tool>` unambiguous: no `__` inside, no trailing `_`. */
export const ServerNameSchema = z
  .string()
  .regex(SERVER_NAME, 'server name must match /^[a-zA-Z0-9_-]{1,32}$/')
  .refine((name) => !name.includes('__') && !name.endsWith('_'), {
    message: 'server name must not contain "__" nor end with "_" (it is embedded in mcp__<server>__<tool>)',
  });

/** What only the operator may set for a stdio server: present in a tenant's config, it is refused by name. */
const operatorOnly = (field: string) =>
  z
    .never({
      error: `stdio MCP servers are defined by the operator (MCP_STDIO_SERVERS); choose one with "server" instead of setting "${field}"`,
    })
    .optional();

/** An MCP server as a tenant configures it for an agent. */
export const McpServerConfigSchema = z.discriminatedUnion('transport', [
  z
    .object({
      name: ServerNameSchema,
      transport: z.literal('stdio'),
      /** The operator's entry in MCP_STDIO_SERVERS. */
      server: z.string().min(1).max(32),
      command: operatorOnly('command'),
      args: operatorOnly('args'),
      env: operatorOnly('env'),
      cwd: operatorOnly('cwd'),
    })
    .strict(),
  z
    .object({
      name: ServerNameSchema,
      transport: z.literal('http'),
      url: z.url({ protocol: /^https?$/ }),
      headers: z.record(z.string(), z.string()).optional(),
    })
    .strict(),
]);

export type McpServerConfig =
  | { name: string; transport: 'stdio'; server: string }
  | { name: string; transport: 'http'; url: string; headers?: Record<string, string> };

// Compile-time check that the schema and the hand-written type agree both ways.
type _SchemaMatchesType = [z.infer<typeof McpServerConfigSchema>] extends [McpServerConfig]
  ? [McpServerConfig] extends [z.infer<typeof McpServerConfigSchema>]
    ? true
    : never
  : never;
const _schemaMatchesType: _SchemaMatchesType = true;
void _schemaMatchesType;
