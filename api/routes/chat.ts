import { randomUUID } from 'node:crypto';
import { Router, type Response } from 'express';
import { agentSettings } from '../../lib/config';
import { ChatBody, Uuid } from '../../lib/models';
import type { AppDeps } from '../deps';
import { conflict, notFound, parse } from '../errors';
import { PageQuery } from '../paging';

/**
 * Chat with an agent. POST streams Server-Sent Events: `session` (ids), `token` (text deltas),
 * `tool_call`, `tool_result`, then `message` (the stored answer) or `error`. With `"stream": false` it
 * answers JSON once the turn is done. A client that disconnects cancels the turn.
 */
export function chatRoutes({ store, gateway, config, chatEvents }: AppDeps): Router {
  const router = Router();

  router.post('/', async (req, res) => {
    const body = parse(ChatBody, req.body, 'body');
    const orgId: string = res.locals.orgId;
    const record = body.agentId
      ? await store.agent(orgId, body.agentId)
      : (await store.agents(orgId, { type: body.agentType, limit: 1, offset: 0 }))[0];
    if (!record) throw notFound(body.agentId ? 'agent' : 'agent of type', body.agentId ?? body.agentType!);
    if (record.status === 'ARCHIVED') throw conflict('agent is archived');
    const live = await gateway.state(record.id);
    if (!live) throw conflict('agent is not running');
    const sessionId = body.sessionId ?? randomUUID();
    if (body.sessionId && !(await store.chatSessionAllowed(orgId, sessionId)))
      throw notFound('chat session', sessionId);
    const turnId = randomUUID();
    const turn = () =>
      gateway.chatTurn(
        sessionId,
        live.agent,
        agentSettings(config),
        { turnId, message: body.message },
        // A session id made here is new: its workflow need not look for stored turns.
        { newSession: body.sessionId === undefined },
      );

    if (!body.stream) {
      const result = await turn();
      res.status(result.status === 'failed' ? 502 : 200).json({ sessionId, agentId: record.id, ...result });
      return;
    }

    const send = sse(res);
    let finished = false;
    const unsubscribe = await chatEvents.subscribe(turnId, (event) => {
      if (event.type === 'token' && event.data.delta === '') return;
      send(event.type, event.data);
    });
    // The response closes when the client goes away (the request's own 'close' fires once its body is read).
    res.on('close', () => {
      if (!finished) void gateway.cancelChatTurn(sessionId, turnId).catch(() => undefined);
    });
    send('session', { sessionId, turnId, agentId: record.id, agentType: record.type });
    try {
      const result = await turn();
      send(result.status === 'completed' ? 'message' : 'error', { sessionId, ...result });
    } catch (err) {
      send('error', { sessionId, turnId, status: 'failed', error: err instanceof Error ? err.message : String(err) });
    } finally {
      finished = true;
      unsubscribe();
      res.end();
    }
  });

  router.get('/:sessionId', async (req, res) => {
    const { sessionId } = req.params;
    const page = parse(PageQuery, req.query, 'query');
    const known = Uuid.safeParse(sessionId).success && (await store.chatSessionExists(res.locals.orgId, sessionId));
    if (!known) throw notFound('chat session', sessionId);
    const messages = await store.chatHistory(res.locals.orgId, sessionId, page);
    res.json({ sessionId, messages, limit: page.limit, offset: page.offset });
  });

  return router;
}

/** Writes Server-Sent Events; headers go out at once so the client sees the stream open. */
function sse(res: Response) {
  res.status(200);
  res.setHeader('Content-Type', 'text/event-stream');
  res.setHeader('Cache-Control', 'no-cache, no-transform');
  res.setHeader('Connection', 'keep-alive');
  res.setHeader('X-Accel-Buffering', 'no');
  res.flushHeaders();
  return (event: string, data: unknown) => {
    if (!res.writableEnded) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
}
