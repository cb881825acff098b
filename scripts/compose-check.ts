/**
 * Checks docker-compose.yml and the Dockerfile without Docker: the compose file parses, every file it
 * mounts or builds from exists, depends_on names real services with valid conditions and no cycle,
 * long-running services have health checks, the image is multi-stage and runs as a non-root user, the
 * search attributes the compose job registers are the ones the code uses, and the Temporal cluster agrees
 * with `npm start -- --cluster` (temporal/cluster.ts): the same server and UI versions, the same files from
 * temporal/cluster/ (configuration template, dynamic config, entry point, schema script), one container
 * per service, only variables the template reads, and the same default ports. Prints the start order.
 *
 *   npx tsx scripts/compose-check.ts        # exit 1 and a list of problems when anything is off
 *
 * No YAML library is installed, so `parseComposeYaml` reads the subset compose files use: block
 * mappings and sequences, flow sequences (also over several lines), quoted and plain scalars, comments,
 * anchors, aliases and `<<` merge keys. It throws on anything else rather than guess.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SEARCH_ATTRIBUTES } from '../contract/search-attributes';
import {
  CLUSTER_CONFIG_DIR,
  CLUSTER_SERVICES,
  clusterServiceEnv,
  DEFAULT_CLUSTER_PORTS,
  TEMPORAL_UI_VERSION,
} from '../temporal/cluster';
import { TEMPORAL_SERVER_VERSION } from '../temporal/dev-server';
import { JAEGER_IMAGE } from './jaeger';

const ROOT = path.resolve(__dirname, '..');

type Yaml = string | number | boolean | null | Yaml[] | { [key: string]: Yaml };
type YamlMap = { [key: string]: Yaml };

interface Line {
  indent: number;
  text: string;
  no: number;
}

export function parseComposeYaml(source: string): YamlMap {
  const lines: Line[] = [];
  source.split('\n').forEach((raw, i) => {
    const text = stripComment(raw).trimEnd();
    if (text.trim() === '') return;
    if (/\t/.test(raw.slice(0, raw.length - raw.trimStart().length))) throw new Error(`line ${i + 1}: tab indentation`);
    lines.push({ indent: raw.length - raw.trimStart().length, text: text.trim(), no: i + 1 });
  });
  joinFlowSequences(lines);
  const anchors = new Map<string, Yaml>();
  let pos = 0;

  const scalar = (text: string, no: number): Yaml => {
    if (text.startsWith('*')) {
      const name = text.slice(1);
      if (!anchors.has(name)) throw new Error(`line ${no}: unknown alias *${name}`);
      return anchors.get(name)!;
    }
    if (text.startsWith('[')) {
      if (!text.endsWith(']')) throw new Error(`line ${no}: multi-line flow sequences are not supported`);
      const inner = text.slice(1, -1).trim();
      // A trailing comma (as Prettier writes multi-line sequences) ends the list.
      const items = inner === '' ? [] : splitFlow(inner).map((item) => item.trim());
      if (items.at(-1) === '') items.pop();
      return items.map((item) => scalar(item, no));
    }
    if (text.startsWith('{')) throw new Error(`line ${no}: flow mappings are not supported`);
    if (/^".*"$/.test(text)) return JSON.parse(text) as string;
    if (/^'.*'$/.test(text)) return text.slice(1, -1).replace(/''/g, "'");
    if (text === 'true' || text === 'false') return text === 'true';
    if (text === 'null' || text === '~') return null;
    if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
    if (/^[|>]/.test(text)) throw new Error(`line ${no}: block scalars are not supported`);
    return text;
  };

  /** A value after `key:` or `- `: inline, or the block indented below. */
  const valueAfter = (rest: string, parentIndent: number, no: number): Yaml => {
    let anchor: string | undefined;
    const m = /^&([\w-]+)\s*(.*)$/.exec(rest);
    if (m) [anchor, rest] = [m[1], m[2]!];
    const value =
      rest !== ''
        ? scalar(rest, no)
        : pos < lines.length && lines[pos]!.indent > parentIndent
          ? block(lines[pos]!.indent)
          : lines[pos]?.text.startsWith('- ') && lines[pos]!.indent === parentIndent
            ? block(parentIndent)
            : null;
    if (anchor) anchors.set(anchor, value);
    return value;
  };

  const block = (indent: number): Yaml => {
    const first = lines[pos]!;
    if (first.text === '-' || first.text.startsWith('- ')) {
      const items: Yaml[] = [];
      while (
        pos < lines.length &&
        lines[pos]!.indent === indent &&
        (lines[pos]!.text === '-' || lines[pos]!.text.startsWith('- '))
      ) {
        const line = lines[pos]!;
        const rest = line.text.slice(1).trim();
        if (/^[\w.-]+:(\s|$)/.test(rest)) {
          // `- key: value` starts a mapping whose other keys align with `key`.
          const itemIndent = line.indent + line.text.indexOf(rest);
          lines[pos] = { ...line, indent: itemIndent, text: rest };
          items.push(block(itemIndent));
        } else {
          pos++;
          items.push(valueAfter(rest, line.indent, line.no));
        }
      }
      return items;
    }
    const map: YamlMap = {};
    const explicit = new Set<string>();
    while (pos < lines.length && lines[pos]!.indent === indent) {
      const line = lines[pos]!;
      const m = /^("[^"]+"|'[^']+'|[^\s:][^:]*?):(?:\s+(.*))?$/.exec(line.text);
      if (!m) throw new Error(`line ${line.no}: expected "key: value", got "${line.text}"`);
      const key = m[1]!.replace(/^["']|["']$/g, '');
      pos++;
      const value = valueAfter(m[2] ?? '', indent, line.no);
      if (key === '<<') {
        if (!value || typeof value !== 'object' || Array.isArray(value))
          throw new Error(`line ${line.no}: << needs a mapping`);
        for (const [k, v] of Object.entries(value)) if (!(k in map)) map[k] = v;
      } else {
        // Explicit keys win over merged ones, whatever their order.
        if (explicit.has(key)) throw new Error(`line ${line.no}: duplicate key ${key}`);
        explicit.add(key);
        map[key] = value;
      }
    }
    if (pos < lines.length && lines[pos]!.indent > indent)
      throw new Error(`line ${lines[pos]!.no}: unexpected indentation`);
    return map;
  };

  const doc = block(0);
  if (pos !== lines.length) throw new Error(`line ${lines[pos]!.no}: unexpected content`);
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new Error('the document is not a mapping');
  return doc;
}

/**
 * Puts a flow sequence written over several lines back on one line, on the line of its key when it
 * starts on the next one (`test:` then `[` … `]`).
 */
function joinFlowSequences(lines: Line[]): void {
  for (let i = 0; i < lines.length; i++) {
    let depth = bracketDepth(lines[i]!.text);
    while (depth > 0 && i + 1 < lines.length) {
      const next = lines.splice(i + 1, 1)[0]!;
      lines[i] = { ...lines[i]!, text: `${lines[i]!.text} ${next.text}` };
      depth = bracketDepth(lines[i]!.text);
    }
    if (depth !== 0) throw new Error(`line ${lines[i]!.no}: unbalanced [ ]`);
    const previous = lines[i - 1];
    if (
      lines[i]!.text.startsWith('[') &&
      previous &&
      previous.text.endsWith(':') &&
      lines[i]!.indent > previous.indent
    ) {
      lines[i - 1] = { ...previous, text: `${previous.text} ${lines[i]!.text}` };
      lines.splice(i, 1);
      i--;
    }
  }
}

/** Open minus closed square brackets outside quotes. */
function bracketDepth(text: string): number {
  let depth = 0;
  let quote: string | null = null;
  for (const c of text) {
    if (quote) {
      if (c === quote) quote = null;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '[') depth++;
    else if (c === ']') depth--;
  }
  return depth;
}

function stripComment(line: string): string {
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = null;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i);
  }
  return line;
}

function splitFlow(inner: string): string[] {
  const parts: string[] = [];
  let quote: string | null = null;
  let start = 0;
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i]!;
    if (quote) {
      if (c === quote) quote = null;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === ',') {
      parts.push(inner.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(inner.slice(start));
  return parts;
}

// ---------------------------------------------------------------------------------------------

export interface ComposeReport {
  services: string[];
  /** Services grouped by start wave: each starts once everything in earlier waves it depends on is ready. */
  startOrder: string[][];
  /** service -> { dependency: condition } */
  dependencies: Record<string, Record<string, string>>;
  problems: string[];
}

const CONDITIONS = ['service_started', 'service_healthy', 'service_completed_successfully'];

export function checkCompose(
  opts: { composeText?: string; dockerfileText?: string; root?: string } = {},
): ComposeReport {
  const root = opts.root ?? ROOT;
  const problems: string[] = [];
  const exists = (p: string) => fs.existsSync(path.resolve(root, p));
  let doc: YamlMap;
  try {
    doc = parseComposeYaml(opts.composeText ?? fs.readFileSync(path.join(root, 'docker-compose.yml'), 'utf8'));
  } catch (err) {
    return {
      services: [],
      startOrder: [],
      dependencies: {},
      problems: [`docker-compose.yml does not parse: ${(err as Error).message}`],
    };
  }
  const services = (doc.services ?? {}) as Record<string, YamlMap>;
  const names = Object.keys(services);
  const dependencies: Record<string, Record<string, string>> = {};

  for (const [name, svc] of Object.entries(services)) {
    if (!svc.image && !svc.build) problems.push(`${name}: neither image nor build`);
    const build = svc.build as YamlMap | string | undefined;
    if (build) {
      const context = typeof build === 'string' ? build : String(build.context ?? '.');
      const dockerfile = typeof build === 'string' ? 'Dockerfile' : String(build.dockerfile ?? 'Dockerfile');
      if (!exists(context)) problems.push(`${name}: build context ${context} does not exist`);
      if (!exists(path.join(context, dockerfile)))
        problems.push(`${name}: ${path.join(context, dockerfile)} does not exist`);
    }
    for (const volume of (svc.volumes ?? []) as Yaml[]) {
      const source = typeof volume === 'string' ? volume.split(':')[0]! : '';
      if (/^\.{0,2}\//.test(source) && !exists(source))
        problems.push(`${name}: mounts ${source}, which does not exist`);
    }
    for (const file of (svc.env_file ?? []) as Yaml[]) {
      const entry = typeof file === 'string' ? { path: file, required: true } : (file as YamlMap);
      if (entry.required !== false && !exists(String(entry.path)))
        problems.push(`${name}: env_file ${entry.path} does not exist`);
    }
    const deps = svc.depends_on;
    dependencies[name] = {};
    if (Array.isArray(deps)) for (const d of deps) dependencies[name][String(d)] = 'service_started';
    else if (deps && typeof deps === 'object') {
      for (const [d, spec] of Object.entries(deps))
        dependencies[name][d] = String((spec as YamlMap | null)?.condition ?? 'service_started');
    }
    for (const [d, condition] of Object.entries(dependencies[name])) {
      if (!names.includes(d)) problems.push(`${name}: depends on unknown service ${d}`);
      if (!CONDITIONS.includes(condition)) problems.push(`${name}: unknown depends_on condition ${condition}`);
      if (condition === 'service_healthy' && services[d] && !hasHealthcheck(services[d], opts, root)) {
        problems.push(`${name}: waits for ${d} to be healthy, but ${d} has no health check`);
      }
    }
    const oneShot = svc.restart === 'no';
    if (!oneShot && !hasHealthcheck(svc, opts, root))
      problems.push(`${name}: long-running service without a health check`);
  }

  // Start waves (a topological order); a cycle leaves services unplaced.
  const startOrder: string[][] = [];
  const placed = new Set<string>();
  while (placed.size < names.length) {
    const wave = names.filter(
      (n) => !placed.has(n) && Object.keys(dependencies[n] ?? {}).every((d) => placed.has(d) || !names.includes(d)),
    );
    if (wave.length === 0) {
      problems.push(`depends_on cycle among: ${names.filter((n) => !placed.has(n)).join(', ')}`);
      break;
    }
    wave.forEach((n) => placed.add(n));
    startOrder.push(wave);
  }

  problems.push(...checkDockerfile(opts.dockerfileText ?? readIfExists(path.join(root, 'Dockerfile')), root));

  // The compose job registers the attributes workflows set; both lists must agree.
  const script = readIfExists(path.join(root, 'temporal/register-search-attributes.sh'));
  const registered = /^ATTRIBUTES="([^"]*)"/m.exec(script)?.[1]?.split(/\s+/).sort() ?? [];
  const used = Object.keys(SEARCH_ATTRIBUTES).sort();
  if (registered.join() !== used.join())
    problems.push(`register-search-attributes.sh registers [${registered}] but the code uses [${used}]`);

  problems.push(...checkClusterAgreement(services, root));

  return { services: names, startOrder, dependencies, problems };
}

/**
 * The temporal-* services must run what `npm start -- --cluster` runs: one container per service of the
 * pinned server image, the files of temporal/cluster/ mounted and used as they are (entry point,
 * configuration template, dynamic config, schema script), no variable the template does not read (a
 * typo would silently fall back to a single-machine default), and the template's default ports equal to
 * the launcher's.
 */
function checkClusterAgreement(services: Record<string, YamlMap>, root: string): string[] {
  const problems: string[] = [];
  const configDir = `./${path.relative(root, CLUSTER_CONFIG_DIR)}`;
  const template = readIfExists(path.join(CLUSTER_CONFIG_DIR, 'cluster.yaml'));
  const templateVars = new Set([...template.matchAll(/env "(\w+)"/g)].map((m) => m[1]!));
  const envOf = (svc: YamlMap) => (svc.environment ?? {}) as Record<string, Yaml>;
  /** Where a service mounts temporal/cluster/, if it does. */
  const mountOf = (svc: YamlMap) =>
    ((svc.volumes ?? []) as Yaml[])
      .map((v) => String(v).split(':'))
      .find(([source]) => source?.replace(/\/$/, '') === configDir)?.[1];
  const entrypoint = (svc: YamlMap) => [svc.entrypoint ?? [], svc.command ?? []].flat().map(String).join(' ');

  if (templateVars.size === 0) problems.push('temporal/cluster/cluster.yaml reads no variables');
  for (const key of Object.keys(
    clusterServiceEnv({ db: { host: 'h', port: 1, user: 'u', password: 'p' }, ports: DEFAULT_CLUSTER_PORTS, ip: 'i' }),
  )) {
    if (!templateVars.has(key)) problems.push(`temporal/cluster.ts sets ${key}, which cluster.yaml does not read`);
  }
  const templatePort = (variable: string) =>
    Number(new RegExp(`env "${variable}" \\| default "(\\d+)"`).exec(template)?.[1]);
  const portVariables: [keyof typeof DEFAULT_CLUSTER_PORTS, string][] = [
    ['frontend', 'TEMPORAL_FRONTEND_PORT'],
    ['frontendHttp', 'TEMPORAL_FRONTEND_HTTP_PORT'],
    ['history', 'TEMPORAL_HISTORY_PORT'],
    ['matching', 'TEMPORAL_MATCHING_PORT'],
    ['worker', 'TEMPORAL_WORKER_PORT'],
    ['frontendMembership', 'TEMPORAL_FRONTEND_MEMBERSHIP_PORT'],
    ['historyMembership', 'TEMPORAL_HISTORY_MEMBERSHIP_PORT'],
    ['matchingMembership', 'TEMPORAL_MATCHING_MEMBERSHIP_PORT'],
    ['workerMembership', 'TEMPORAL_WORKER_MEMBERSHIP_PORT'],
  ];
  for (const [key, variable] of portVariables) {
    if (templatePort(variable) !== DEFAULT_CLUSTER_PORTS[key])
      problems.push(
        `cluster.yaml defaults ${variable} to ${templatePort(variable)}, the launcher to ${DEFAULT_CLUSTER_PORTS[key]}`,
      );
  }

  const servers = Object.entries(services).filter(([, svc]) =>
    String(svc.image ?? '').startsWith('temporalio/server:'),
  );
  const serverImage = `temporalio/server:${TEMPORAL_SERVER_VERSION}`;
  const run = servers.map(([, svc]) => String(envOf(svc).TEMPORAL_SERVICE ?? '')).sort();
  if (run.join() !== [...CLUSTER_SERVICES].sort().join())
    problems.push(`the temporalio/server services run [${run}], not one each of [${[...CLUSTER_SERVICES].sort()}]`);
  for (const [name, svc] of servers) {
    const env = envOf(svc);
    if (svc.image !== serverImage)
      problems.push(`${name}: image ${String(svc.image)}, but the launcher runs ${serverImage}`);
    const mount = mountOf(svc);
    if (!mount) {
      problems.push(`${name}: does not mount ${configDir}`);
      continue;
    }
    if (!entrypoint(svc).includes(`${mount}/start-service.sh`))
      problems.push(`${name}: does not start through ${mount}/start-service.sh, as the launcher does`);
    if (env.TEMPORAL_DYNAMIC_CONFIG !== `${mount}/dynamicconfig.yaml`)
      problems.push(`${name}: TEMPORAL_DYNAMIC_CONFIG is not ${mount}/dynamicconfig.yaml`);
    for (const key of Object.keys(env)) {
      if (key.startsWith('TEMPORAL_') && key !== 'TEMPORAL_SERVICE' && !templateVars.has(key))
        problems.push(`${name}: sets ${key}, which temporal/cluster/cluster.yaml does not read`);
    }
    // Without these the template's defaults describe one machine (127.0.0.1).
    for (const key of ['TEMPORAL_DB_HOST', 'TEMPORAL_DB_PASSWORD', 'TEMPORAL_BIND_IP', 'TEMPORAL_FRONTEND_ADDRESS']) {
      if (!(key in env)) problems.push(`${name}: does not set ${key}`);
    }
  }

  const schemaJobs = Object.entries(services).filter(([, svc]) => {
    const mount = mountOf(svc);
    return mount !== undefined && entrypoint(svc).includes(`${mount}/setup-schema.sh`);
  });
  if (schemaJobs.length !== 1) problems.push('no one-shot service runs temporal/cluster/setup-schema.sh');
  for (const [name, svc] of schemaJobs) {
    if (!String(svc.image).startsWith(`temporalio/admin-tools:${TEMPORAL_SERVER_VERSION}-`))
      problems.push(`${name}: image ${String(svc.image)} does not ship temporal-sql-tool ${TEMPORAL_SERVER_VERSION}`);
    for (const [server, svc2] of servers) {
      const condition = ((svc2.depends_on ?? {}) as Record<string, YamlMap>)[name]?.condition;
      if (condition !== 'service_completed_successfully')
        problems.push(`${server}: does not wait for ${name} to complete`);
    }
  }

  const uiTemplate = readIfExists(path.join(CLUSTER_CONFIG_DIR, 'ui.yaml'));
  const uiVars = new Set([...uiTemplate.matchAll(/env "(\w+)"/g)].map((m) => m[1]!));
  for (const [name, svc] of Object.entries(services).filter(([, s]) =>
    String(s.image ?? '').startsWith('temporalio/ui:'),
  )) {
    if (svc.image !== `temporalio/ui:${TEMPORAL_UI_VERSION}`)
      problems.push(`${name}: image ${String(svc.image)}, but the launcher runs UI server ${TEMPORAL_UI_VERSION}`);
    for (const key of Object.keys(envOf(svc))) {
      if (!uiVars.has(key)) problems.push(`${name}: sets ${key}, which temporal/cluster/ui.yaml does not read`);
    }
  }

  // Traces go to the Jaeger release that `npm start -- --traces` and test/traces.test.ts run.
  for (const [name, svc] of Object.entries(services).filter(([, s]) =>
    String(s.image ?? '').startsWith('jaegertracing/'),
  )) {
    if (svc.image !== JAEGER_IMAGE)
      problems.push(`${name}: image ${String(svc.image)}, but the launcher and the tests run ${JAEGER_IMAGE}`);
  }
  return problems;
}

function hasHealthcheck(svc: YamlMap, opts: { dockerfileText?: string }, root: string): boolean {
  const hc = svc.healthcheck as YamlMap | undefined;
  if (hc) return hc.disable !== true && Array.isArray(hc.test);
  // A service built from the project's Dockerfile inherits its HEALTHCHECK.
  return (
    Boolean(svc.build) && /^HEALTHCHECK\s/m.test(opts.dockerfileText ?? readIfExists(path.join(root, 'Dockerfile')))
  );
}

function checkDockerfile(text: string, root: string): string[] {
  if (!text) return ['Dockerfile is missing'];
  const problems: string[] = [];
  const stages = [...text.matchAll(/^FROM\s+\S+(?:\s+AS\s+(\S+))?/gim)];
  if (stages.length < 2) problems.push('Dockerfile: not a multi-stage build');
  const users = [...text.matchAll(/^USER\s+(\S+)/gm)].map((m) => m[1]);
  if (users.length === 0 || ['root', '0'].includes(users.at(-1)!))
    problems.push('Dockerfile: the final stage does not switch to a non-root USER');
  for (const m of text.matchAll(/^COPY\s+(?!--from)(.+)$/gm)) {
    const parts = m[1]!
      .trim()
      .split(/\s+/)
      .filter((p) => !p.startsWith('--'));
    for (const source of parts.slice(0, -1))
      if (!fs.existsSync(path.resolve(root, source))) problems.push(`Dockerfile: COPY ${source}, which does not exist`);
  }
  if (!/^HEALTHCHECK\s/m.test(text)) problems.push('Dockerfile: no HEALTHCHECK');
  const copied = new Set(
    [...text.matchAll(/^COPY\s+(?!--from)(.+)$/gm)].flatMap((m) =>
      m[1]!
        .trim()
        .split(/\s+/)
        .filter((p) => !p.startsWith('--'))
        .slice(0, -1)
        .map((source) => source.replace(/^\.\//, '').replace(/\/$/, '')),
    ),
  );
  for (const dir of sourceFoldersOf(root, IMAGE_ENTRY_POINTS))
    if (!copied.has(dir)) problems.push(`Dockerfile: the image runs code from ${dir}/ but does not COPY it`);
  return problems;
}

/** What the image's processes start: the API (the default command) and the worker (compose's command). */
const IMAGE_ENTRY_POINTS = ['api/server.ts', 'workers/main.ts'];

/** The top-level folders the entry points load, following relative imports (type-only ones included). */
export function sourceFoldersOf(root: string, entryPoints: string[]): Set<string> {
  const seen = new Set<string>();
  const pending = entryPoints.map((f) => path.resolve(root, f)).filter((f) => fs.existsSync(f));
  while (pending.length) {
    const file = pending.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*|require\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)) {
      const base = path.resolve(path.dirname(file), m[1]!);
      const target = [base, `${base}.ts`, path.join(base, 'index.ts')].find(
        (f) => fs.existsSync(f) && fs.statSync(f).isFile(),
      );
      if (target && target.endsWith('.ts')) pending.push(target);
    }
  }
  return new Set([...seen].map((f) => path.relative(root, f).split(path.sep)[0]!).filter((d) => !d.endsWith('.ts')));
}

function readIfExists(file: string): string {
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
}

if (require.main === module) {
  const report = checkCompose();
  console.log(`services: ${report.services.join(', ')}`);
  report.startOrder.forEach((wave, i) => console.log(`start wave ${i + 1}: ${wave.join(', ')}`));
  if (report.problems.length) {
    console.error(`\n${report.problems.length} problem(s):\n${report.problems.map((p) => `  - ${p}`).join('\n')}`);
    process.exit(1);
  }
  console.log('docker-compose.yml and Dockerfile: OK');
}
