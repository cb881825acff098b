/**
 * The catalogue of agent types: eight types, each with a default autonomy level, the tools its agents may
 * use and a prompt. An organisation may change any of them (PUT /api/v1/agent-types/:type); its changes
 * are rows of `agent_types` laid over these defaults (lib/records/agent-types.ts). An agent created with
 * one of these types takes the type's autonomy, tools, prompt and config where its request does not set them.
 */
import type { Autonomy } from '../contract/definitions';

export const AGENT_TYPES = [
  'content',
  'clip',
  'publishing',
  'moderation',
  'analytics',
  'growth',
  'community',
  'revenue',
] as const;
export type AgentTypeName = (typeof AGENT_TYPES)[number];

/** What an organisation may change about a type. */
export interface AgentTypeSettings {
  name: string;
  autonomyLevel: Autonomy;
  isEnabled: boolean;
  /** Tool names agents of this type may use (their `allowedTools`). */
  allowedSkills: string[];
  /** Free JSON handed to the agent's prompt. */
  config: Record<string, unknown>;
  /** Added to the agent's system prompt; null for none. */
  systemPrompt: string | null;
}

export interface AgentTypeDefaults extends AgentTypeSettings {
  description: string;
}

const MEMORY = ['memory_read', 'memory_write'];

const defaults = (
  name: string,
  description: string,
  autonomyLevel: Autonomy,
  allowedSkills: string[],
  systemPrompt: string,
): AgentTypeDefaults => ({
  name,
  description,
  autonomyLevel,
  isEnabled: true,
  allowedSkills,
  config: {},
  systemPrompt,
});

export const AGENT_TYPE_DEFAULTS: Readonly<Record<AgentTypeName, AgentTypeDefaults>> = Object.freeze({
  content: defaults(
    'Content',
    'Generate captions, titles, descriptions',
    'copilot',
    [...MEMORY, 'send_message', 'create_task'],
    'You write captions, titles and descriptions. Match the channel and audience; offer drafts a person can approve.',
  ),
  clip: defaults(
    'Clip',
    'Detect highlights, create clips',
    'copilot',
    [...MEMORY, 'http_get', 'create_task'],
    'You find highlights in long recordings and propose clips with start and end times and a reason for each.',
  ),
  publishing: defaults(
    'Publishing',
    'Schedule and publish content',
    'copilot',
    [...MEMORY, 'http_post', 'create_reminder'],
    'You schedule and publish content. Say where, when and what you will publish before doing it.',
  ),
  moderation: defaults(
    'Moderation',
    'Review flagged content, take action',
    'autopilot',
    [...MEMORY, 'send_message'],
    'You review flagged content against the community rules and state the rule and the action for each item.',
  ),
  analytics: defaults(
    'Analytics',
    'Generate insights, weekly reports',
    'autopilot',
    [...MEMORY, 'http_get', 'create_reminder'],
    'You turn metrics into insights and weekly reports: what changed, why it likely changed, what to do next.',
  ),
  growth: defaults(
    'Growth',
    'SEO optimization, trend surfing',
    'copilot',
    [...MEMORY, 'http_get', 'create_task'],
    'You improve discoverability: search keywords, titles and timely trends worth joining.',
  ),
  community: defaults(
    'Community',
    'Respond to DMs, comments, mentions',
    'manual',
    [...MEMORY, 'send_message'],
    'You draft replies to messages, comments and mentions in the creator’s voice; a person sends them.',
  ),
  revenue: defaults(
    'Revenue',
    'Track sponsorships, optimize monetization',
    'manual',
    [...MEMORY, 'http_get'],
    'You track sponsorships and income and recommend ways to earn more; a person acts on them.',
  ),
});

/** The catalogue's name for `type` (case does not matter), or undefined when it is not one of the eight. */
export function catalogueType(type: string): AgentTypeName | undefined {
  const lower = type.toLowerCase();
  return (AGENT_TYPES as readonly string[]).includes(lower) ? (lower as AgentTypeName) : undefined;
}
