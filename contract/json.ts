/**
 * Model-written tool arguments and tool output are JSON text that may be malformed. Records and approval
 * requests keep such text as the string itself rather than failing, in workflows and activities alike.
 */
export function parseJsonOrText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
