import type { Db } from '../db';
import {
  AGENT_TYPE_DEFAULTS,
  AGENT_TYPES,
  catalogueType,
  type AgentTypeName,
  type AgentTypeSettings,
} from '../agent-types';

/**
 * SQL of `agent_types`: an organisation's changes to the catalogue, laid over the defaults of
 * lib/agent-types.ts. A type without a row is its defaults.
 */

export interface AgentTypeRecord extends AgentTypeSettings {
  orgId: string;
  agentType: AgentTypeName;
  description: string;
  /** False while the type has its defaults. */
  customised: boolean;
  updatedAt: string | null;
}

interface Row extends AgentTypeSettings {
  agentType: AgentTypeName;
  updatedAt: string;
}

const COLUMNS = `agent_type AS "agentType", name, autonomy_level AS "autonomyLevel", is_enabled AS "isEnabled",
  allowed_skills AS "allowedSkills", config, system_prompt AS "systemPrompt", updated_at AS "updatedAt"`;

function withDefaults(orgId: string, type: AgentTypeName, row: Row | undefined): AgentTypeRecord {
  const { description, ...defaults } = AGENT_TYPE_DEFAULTS[type];
  const settings = row
    ? {
        name: row.name,
        autonomyLevel: row.autonomyLevel,
        isEnabled: row.isEnabled,
        allowedSkills: row.allowedSkills,
        config: row.config,
        systemPrompt: row.systemPrompt,
      }
    : { ...defaults, allowedSkills: [...defaults.allowedSkills], config: { ...defaults.config } };
  return {
    orgId,
    agentType: type,
    description,
    ...settings,
    customised: Boolean(row),
    updatedAt: row ? new Date(row.updatedAt).toISOString() : null,
  };
}

/** The organisation's catalogue, in the catalogue's order. */
export async function listAgentTypes(db: Db, orgId: string): Promise<AgentTypeRecord[]> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM agent_types WHERE org_id = $1`, [orgId]);
  return AGENT_TYPES.map((type) =>
    withDefaults(
      orgId,
      type,
      rows.find((r) => r.agentType === type),
    ),
  );
}

export async function agentTypeOf(db: Db, orgId: string, type: AgentTypeName): Promise<AgentTypeRecord> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM agent_types WHERE org_id = $1 AND agent_type = $2`, [
    orgId,
    type,
  ]);
  return withDefaults(orgId, type, rows[0]);
}

/** False only when the organisation disabled this type (a type outside the catalogue, or without a row, is enabled). */
export async function agentTypeEnabled(db: Db, orgId: string, agentType: string): Promise<boolean> {
  const type = catalogueType(agentType);
  if (!type) return true;
  const { rows } = await db.query<{ isEnabled: boolean }>(
    'SELECT is_enabled AS "isEnabled" FROM agent_types WHERE org_id = $1 AND agent_type = $2',
    [orgId, type],
  );
  return rows[0]?.isEnabled ?? true;
}

/** The agent's type when its organisation disabled that type (the agent takes no new tasks); null otherwise. */
export async function disabledTypeOf(db: Db, orgId: string, agentId: string): Promise<string | null> {
  const { rows } = await db.query<{ type: string }>('SELECT type FROM agents WHERE id = $1 AND org_id = $2', [
    agentId,
    orgId,
  ]);
  const type = rows[0]?.type;
  return type !== undefined && !(await agentTypeEnabled(db, orgId, type)) ? type : null;
}

const SETTING_COLUMNS: Record<keyof AgentTypeSettings, string> = {
  name: 'name',
  autonomyLevel: 'autonomy_level',
  isEnabled: 'is_enabled',
  allowedSkills: 'allowed_skills',
  config: 'config',
  systemPrompt: 'system_prompt',
};

/**
 * Changes the settings in `patch` and keeps the others, in one statement: a first change writes the
 * defaults with the patch; later ones change only the patched columns, so concurrent changes of different
 * settings both stay.
 */
export async function updateAgentType(
  db: Db,
  orgId: string,
  type: AgentTypeName,
  patch: Partial<AgentTypeSettings>,
): Promise<AgentTypeRecord> {
  const first = { ...AGENT_TYPE_DEFAULTS[type], ...patch };
  const changed = (Object.keys(SETTING_COLUMNS) as (keyof AgentTypeSettings)[]).filter((k) => patch[k] !== undefined);
  const sets = changed.map((k) => `${SETTING_COLUMNS[k]} = EXCLUDED.${SETTING_COLUMNS[k]}`);
  const { rows } = await db.query<Row>(
    `INSERT INTO agent_types (org_id, agent_type, name, autonomy_level, is_enabled, allowed_skills, config, system_prompt)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (org_id, agent_type) DO UPDATE SET ${[...sets, 'updated_at = now()'].join(', ')}
     RETURNING ${COLUMNS}`,
    [
      orgId,
      type,
      first.name,
      first.autonomyLevel,
      first.isEnabled,
      first.allowedSkills,
      JSON.stringify(first.config),
      first.systemPrompt,
    ],
  );
  return withDefaults(orgId, type, rows[0]);
}
