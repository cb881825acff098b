import { z } from 'zod';

/** Longest page a listing returns, and the deepest it lets a client skip: bounded work per request. */
export const MAX_PAGE_LIMIT = 200;
export const MAX_PAGE_OFFSET = 100_000;

/** `?limit=&offset=` of the chat and crew listings (default 50, at most 200; offset at most 100,000); out of range is a 400. */
export const PageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(MAX_PAGE_LIMIT).default(50),
  offset: z.coerce.number().int().min(0).max(MAX_PAGE_OFFSET).default(0),
});
export type Page = z.infer<typeof PageQuery>;
