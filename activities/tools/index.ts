import {
  BUILTIN_TOOLS,
  createAgentManagerTool,
  createMetaOrchestrateTool,
  createReminderTool,
  type AgentManagerPort,
  type MetaPort,
  type ReminderPort,
} from './builtins';
import { ToolRegistry } from './registry';

/**
 * The registry every worker and the API use: the built-in tools. Workers pass the ports that
 * agent_manager, meta_orchestrate and create_reminder act through; without them (the API only reads schemas and
 * policies) those tools answer that they are unavailable.
 */
export function createToolRegistry(
  ports: { agents?: AgentManagerPort & MetaPort; reminders?: ReminderPort } = {},
): ToolRegistry {
  return new ToolRegistry().register(
    ...BUILTIN_TOOLS,
    createAgentManagerTool(ports.agents) as never,
    createMetaOrchestrateTool(ports.agents) as never,
    createReminderTool(ports.reminders) as never,
  );
}
