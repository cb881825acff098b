import { Ajv, type ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import safeRegex from 'safe-regex2';
import { extractJson } from '../contract/crew-plan';

/**
 * A task's `expectedOutput`: a JSON Schema (draft 2020-12 unless its `$schema` names draft-07) that the
 * final answer's JSON must match. Compiled once per distinct schema, in the API (to refuse a bad one with a
 * 400) and in the worker (to check answers).
 */

/** The largest schema a task may carry, serialized. */
export const MAX_EXPECTED_OUTPUT_CHARS = 16_384;
/** The most reasons a failed check reports (the model and the operator need the first few, not hundreds). */
const MAX_REASONS = 10;

/**
 * Patterns come from tenants and run against model output in the worker: one with catastrophic
 * backtracking (`(a+)+$`) could hold a worker thread for minutes, so those are refused.
 */
function checkedRegExp(pattern: string, flags: string): RegExp {
  if (!safeRegex(pattern)) throw new Error(`pattern ${JSON.stringify(pattern)} may backtrack catastrophically`);
  return new RegExp(pattern, flags);
}
checkedRegExp.code = 'new RegExp';

function compilerFor(schema: Record<string, unknown>): Ajv {
  const options = { allErrors: true, strict: false, code: { regExp: checkedRegExp } } as const;
  const ajv = String(schema.$schema ?? '').includes('draft-07') ? new Ajv(options) : new Ajv2020(options);
  addFormats(ajv);
  return ajv;
}

const compiled = new Map<string, ValidateFunction>();

/** The schema compiled, or an Error saying why it is not a usable JSON Schema. */
export function compileExpectedOutput(schema: Record<string, unknown>): ValidateFunction {
  const key = JSON.stringify(schema);
  const known = compiled.get(key);
  if (known) return known;
  if (key.length > MAX_EXPECTED_OUTPUT_CHARS)
    throw new Error(`the schema is ${key.length} characters long; at most ${MAX_EXPECTED_OUTPUT_CHARS}`);
  const validate = compilerFor(schema).compile(schema);
  // Bounded: one worker checks the schemas of the tasks it runs, which repeat.
  if (compiled.size >= 256) compiled.delete(compiled.keys().next().value!);
  compiled.set(key, validate);
  return validate;
}

/**
 * The JSON an answer carries: the whole answer (a bare string or number included), else the first JSON object
 * or array in it (as crews read their members' answers).
 */
export function answerJson(answer: string): unknown {
  try {
    return JSON.parse(answer.trim());
  } catch {
    return extractJson(answer);
  }
}

/** Checks an answer against a schema: the reasons it fails (none when it passes) and the JSON it carries. */
export function checkExpectedOutput(
  answer: string,
  schema: Record<string, unknown>,
): { reasons: string[]; output?: unknown } {
  const output = answerJson(answer);
  if (output === undefined) return { reasons: ['the answer is not JSON; answer with JSON only'] };
  const validate = compileExpectedOutput(schema);
  if (validate(output)) return { reasons: [], output };
  const reasons = (validate.errors ?? []).slice(0, MAX_REASONS).map((e) => {
    const where = e.instancePath || '(the whole answer)';
    // The one message that does not name what it is about.
    if (e.keyword === 'additionalProperties')
      return `${where} must not have the property ${JSON.stringify(e.params.additionalProperty)}`;
    return `${where} ${e.message ?? 'is invalid'}`;
  });
  return { reasons: reasons.length ? reasons : ['the answer does not match the expected output schema'], output };
}
