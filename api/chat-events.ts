import pg from 'pg';
import type { Logger } from 'pino';
import { CHAT_EVENTS_CHANNEL, type ChatEvent } from '../contract/definitions';

/**
 * Receives chat events (tokens, tool calls) that workers publish with Postgres NOTIFY and hands them to
 * the request streaming that turn. One LISTEN connection per API process, reconnected if it drops.
 */
export class ChatEventHub {
  private client: pg.Client | undefined;
  private connecting: Promise<void> | undefined;
  private readonly listeners = new Map<string, (event: ChatEvent) => void>();
  private closed = false;

  constructor(
    private readonly databaseUrl: string,
    private readonly logger: Logger,
  ) {}

  /** Registers a listener for one turn; resolves once LISTEN is active, so no early token is missed. */
  async subscribe(turnId: string, listener: (event: ChatEvent) => void): Promise<() => void> {
    this.listeners.set(turnId, listener);
    await this.connect();
    return () => this.listeners.delete(turnId);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.client?.end().catch(() => undefined);
  }

  private connect(): Promise<void> {
    if (this.client) return Promise.resolve();
    this.connecting ??= (async () => {
      const client = new pg.Client({ connectionString: this.databaseUrl });
      client.on('notification', (msg) => {
        if (!msg.payload) return;
        try {
          const event = JSON.parse(msg.payload) as ChatEvent;
          this.listeners.get(event.turnId)?.(event);
        } catch (err) {
          this.logger.warn({ err }, 'unreadable chat event');
        }
      });
      const drop = () => {
        if (this.client === client) this.client = undefined;
        if (!this.closed) this.logger.warn('chat event connection lost; reconnecting on next use');
      };
      client.on('error', drop);
      client.on('end', drop);
      await client.connect();
      await client.query(`LISTEN ${CHAT_EVENTS_CHANNEL}`);
      this.client = client;
    })().finally(() => (this.connecting = undefined));
    return this.connecting;
  }
}
