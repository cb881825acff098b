/**
 * Custom search attributes registered on the Temporal namespace.
 *
 * Kept in its own file, free of Node imports, so workflow code (which is bundled into the
 * deterministic workflow sandbox) can import the names without pulling in `child_process`.
 */
import { defineSearchAttributeKey, type SearchAttributeType } from '@temporalio/common';

export const SEARCH_ATTRIBUTES = {
  AgentId: 'KEYWORD',
  AgentName: 'KEYWORD',
  AgentStatus: 'KEYWORD',
  AgentType: 'KEYWORD',
  OrgId: 'KEYWORD',
  CrewId: 'KEYWORD',
  TaskId: 'KEYWORD',
} as const satisfies Readonly<Record<string, SearchAttributeType>>;

export type SearchAttributeName = keyof typeof SEARCH_ATTRIBUTES;

/** Typed keys for `upsertSearchAttributes` / `typedSearchAttributes`, e.g. `SEARCH_ATTRIBUTE_KEYS.AgentId`. */
export const SEARCH_ATTRIBUTE_KEYS = Object.fromEntries(
  Object.entries(SEARCH_ATTRIBUTES).map(([name, type]) => [name, defineSearchAttributeKey(name, type)]),
) as {
  readonly [K in SearchAttributeName]: ReturnType<typeof defineSearchAttributeKey<(typeof SEARCH_ATTRIBUTES)[K]>>;
};
