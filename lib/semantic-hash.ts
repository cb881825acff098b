import { createHash } from 'node:crypto';

/**
 * The key concepts of a task, so paraphrases share one cached priority: "Write blog post about AI" and
 * "Create an article on artificial intelligence" both become `ai article create`. Words are lower-cased,
 * stop words dropped, common synonyms and spellings folded to one form, crude suffixes stripped, and the
 * set sorted (word order does not change what a task is about).
 */
export function keyConcepts(text: string): string[] {
  let t = ` ${text
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')} `;
  for (const [phrase, concept] of PHRASES) t = t.replaceAll(` ${phrase} `, ` ${concept} `);
  const words = t.split(/[^a-z0-9]+/).filter((w) => w.length > 1 && !STOP_WORDS.has(w));
  const concepts = new Set<string>();
  for (const word of words) {
    const folded = SYNONYMS.get(word) ?? SYNONYMS.get(stem(word)) ?? stem(word);
    concepts.add(folded);
  }
  return [...concepts].sort();
}

/** A stable hash of a task's key concepts (title and input). */
export function semanticHash(title: string, input: Record<string, unknown> = {}): { hash: string; concepts: string } {
  const inputText = Object.entries(input)
    .filter(([key]) => key !== 'script' && key !== 'dependsOn' && key !== 'secrets')
    .map(([key, value]) => `${key} ${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ');
  const concepts = keyConcepts(`${title} ${inputText}`).join(' ');
  return { hash: createHash('sha256').update(concepts).digest('hex').slice(0, 32), concepts };
}

function stem(word: string): string {
  if (/^\d+$/.test(word)) return word;
  const w = word.replace(/ise(s|d)?$|isation$|ising$/, 'ize');
  for (const suffix of ['ations', 'ation', 'ings', 'ing', 'ies', 'ied', 'ed', 'es', 'ly', 's']) {
    if (w.endsWith(suffix) && w.length - suffix.length >= 3)
      return suffix === 'ies' || suffix === 'ied' ? `${w.slice(0, -3)}y` : w.slice(0, -suffix.length);
  }
  return w;
}

const PHRASES: [string, string][] = [
  ['artificial intelligence', 'ai'],
  ['machine learning', 'ml'],
  ['blog post', 'article'],
  ['e mail', 'email'],
];

const SYNONYM_GROUPS: Record<string, string[]> = {
  create: ['write', 'draft', 'compose', 'make', 'produce', 'author', 'generate', 'build', 'prepare'],
  article: ['post', 'blog', 'essay', 'piece', 'story'],
  summarize: ['summary', 'summar', 'recap', 'digest', 'condense', 'summarize'],
  analyze: ['analysis', 'analys', 'examine', 'assess', 'evaluate', 'review', 'analyz'],
  fix: ['repair', 'resolve', 'patch', 'correct'],
  research: ['investigate', 'study', 'explore', 'look'],
  report: ['reports', 'writeup'],
  email: ['mail', 'message'],
  send: ['deliver', 'dispatch'],
  quarter: ['quarterly', 'quarter', 'q1', 'q2', 'q3', 'q4'],
  sale: ['sales', 'revenue'],
  customer: ['client', 'user'],
  bug: ['defect', 'issue', 'error'],
};
const SYNONYMS = new Map<string, string>(
  Object.entries(SYNONYM_GROUPS).flatMap(([concept, words]) => words.map((w) => [w, concept])),
);

const STOP_WORDS = new Set(
  'a an the and or but of on in at to for from by with about into onto over under as is are was were be been being this that these those it its our your their my we you they i me us them please can could would should will shall may might must do does did done up out new some any all each every per via then than so such very just also more most less least'.split(
    ' ',
  ),
);
