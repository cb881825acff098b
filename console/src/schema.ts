/**
 * Checks a value against the subset of JSON Schema the tools' input schemas use (zod's toJSONSchema output:
 * type, properties, required, additionalProperties, enum, const, string and number bounds, items, anyOf).
 * Anything else is accepted here; the server checks the edited call again with the tool's own schema.
 */
export type Schema = Record<string, unknown>;

export interface SchemaIssue {
  path: string;
  message: string;
}

const typeOf = (v: unknown): string =>
  v === null ? 'null' : Array.isArray(v) ? 'array' : Number.isInteger(v) ? 'integer' : typeof v;

function matchesType(value: unknown, type: string): boolean {
  const actual = typeOf(value);
  return actual === type || (type === 'number' && actual === 'integer');
}

export function validate(schema: Schema, value: unknown, path = ''): SchemaIssue[] {
  const at = path || '(root)';
  const issues: SchemaIssue[] = [];
  if (Array.isArray(schema.anyOf) || Array.isArray(schema.oneOf)) {
    const options = (schema.anyOf ?? schema.oneOf) as Schema[];
    if (!options.some((option) => validate(option, value, path).length === 0))
      issues.push({ path: at, message: 'matches none of the allowed shapes' });
    return issues;
  }
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string];
    if (!types.some((t) => matchesType(value, t))) {
      return [{ path: at, message: `expected ${types.join(' or ')}, got ${typeOf(value)}` }];
    }
  }
  if (Array.isArray(schema.enum) && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value)))
    issues.push({ path: at, message: `must be one of ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}` });
  if ('const' in schema && JSON.stringify(schema.const) !== JSON.stringify(value))
    issues.push({ path: at, message: `must be ${JSON.stringify(schema.const)}` });
  if (typeof value === 'string') {
    if (typeof schema.minLength === 'number' && value.length < schema.minLength)
      issues.push({ path: at, message: `needs at least ${schema.minLength} character(s)` });
    if (typeof schema.maxLength === 'number' && value.length > schema.maxLength)
      issues.push({ path: at, message: `allows at most ${schema.maxLength} characters` });
    if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern, 'u').test(value))
      issues.push({
        path: at,
        message: schema.format ? `must be a valid ${String(schema.format)}` : 'has the wrong format',
      });
  }
  if (typeof value === 'number') {
    if (typeof schema.minimum === 'number' && value < schema.minimum)
      issues.push({ path: at, message: `must be at least ${schema.minimum}` });
    if (typeof schema.maximum === 'number' && value > schema.maximum)
      issues.push({ path: at, message: `must be at most ${schema.maximum}` });
  }
  if (Array.isArray(value) && schema.items && typeof schema.items === 'object') {
    value.forEach((item, i) => issues.push(...validate(schema.items as Schema, item, `${path}${path ? '.' : ''}${i}`)));
  }
  if (typeOf(value) === 'object') {
    const obj = value as Record<string, unknown>;
    const props = (schema.properties ?? {}) as Record<string, Schema>;
    for (const key of (schema.required ?? []) as string[]) {
      if (!(key in obj)) issues.push({ path: `${path}${path ? '.' : ''}${key}`, message: 'is required' });
    }
    for (const [key, v] of Object.entries(obj)) {
      const child = `${path}${path ? '.' : ''}${key}`;
      if (props[key]) issues.push(...validate(props[key], v, child));
      else if (schema.additionalProperties === false) issues.push({ path: child, message: 'is not an allowed field' });
      else if (typeof schema.additionalProperties === 'object')
        issues.push(...validate(schema.additionalProperties as Schema, v, child));
    }
  }
  return issues;
}
