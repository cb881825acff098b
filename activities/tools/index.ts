import { BUILTIN_TOOLS } from './builtins';
import { ToolRegistry } from './registry';

/** The registry every worker and the API use: the built-in tools. */
export function createToolRegistry(): ToolRegistry {
  return new ToolRegistry().register(...BUILTIN_TOOLS);
}
