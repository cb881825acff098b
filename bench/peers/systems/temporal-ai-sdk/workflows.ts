/**
 * The Temporal AI SDK peer's workflow: the agent task as `generateText` of the Vercel AI SDK with the
 * `memory_write` tool, whose model calls `@temporalio/ai-sdk` runs as activities (`invokeModel`) and whose
 * tool runs as an activity of its own. With approval, the tool waits for the `decide` update first.
 */
import { temporalProvider } from '@temporalio/ai-sdk/workflow';
import { condition, defineUpdate, proxyActivities, setHandler } from '@temporalio/workflow';
import { generateText, stepCountIs, tool } from 'ai';
import { z } from 'zod';
import type { createActivities } from './activities';

const { memoryWrite } = proxyActivities<ReturnType<typeof createActivities>>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '200 milliseconds', maximumAttempts: 10 },
});

/** An update, so the caller learns that its decision was accepted. */
export const decideUpdate = defineUpdate<void, [boolean]>('decide');

export async function agentTask(input: { taskId: string; approval: boolean }): Promise<string> {
  let decision: boolean | undefined;
  setHandler(decideUpdate, (approve) => void (decision = approve));
  const result = await generateText({
    model: temporalProvider.languageModel('loopback'),
    prompt: `Please do "peer-task ${input.taskId}": write it to memory, then answer.`,
    tools: {
      memory_write: tool({
        description: 'Write to memory.',
        inputSchema: z.object({ key: z.string(), value: z.unknown() }),
        execute: async () => {
          if (input.approval) {
            await condition(() => decision !== undefined);
            if (!decision) return 'rejected';
          }
          return memoryWrite(input.taskId);
        },
      }),
    },
    stopWhen: stepCountIs(4),
  });
  return result.text;
}
