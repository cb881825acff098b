import type { Db } from '../lib/db';
import { insertCrew, type NewCrew } from '../lib/records/crews';
import { insertMetaRun } from '../lib/records/meta-runs';

/**
 * The API's only writes: rows that must exist before their workflow does. A crew is created idle and
 * started later; a meta run's request is answered with its row at once. Everything after belongs to the
 * workflows and their activities.
 */
export function createApiWrites(db: Db) {
  return {
    createCrew: (crew: NewCrew) => insertCrew(db, crew),
    createMetaRun: (run: Parameters<typeof insertMetaRun>[1]) => insertMetaRun(db, run),
  };
}

export type ApiWrites = ReturnType<typeof createApiWrites>;
