/**
 * Payload encryption: an AES-256-GCM `PayloadCodec` in the layout of Temporal's encryption samples.
 *
 * An encrypted payload has metadata `encoding: binary/encrypted` and `encryption-key-id: <id>`; its data
 * is `IV (12 random bytes) || ciphertext || GCM auth tag (16 bytes)`, where the plaintext is the whole
 * original Payload serialized as protobuf (`temporal.api.common.v1.Payload.encode`), so the original
 * metadata (e.g. `encoding: json/plain`) is encrypted and restored too. This is the layout of the Go
 * and Python samples (the TypeScript sample length-prefixes the proto; it is not interchangeable).
 *
 * The codec runs where the SDK runs codecs: in the worker's main thread (never in the workflow sandbox)
 * and in every Client, through `dataConverter.payloadCodecs`, and behind the codec server (/codec).
 *
 * Organisation binding: a payload whose JSON is an object with a top-level `orgId` (workflow and
 * activity inputs built by this project) is encrypted with a key derived for that organisation
 * (HKDF-SHA256 of the configured key) and carries `encryption-org: <orgId>` in clear metadata. Changing
 * that metadata makes the payload undecryptable, so the codec server can hand an organisation's caller
 * only its own payloads. The codec sees bytes without a workflow's owner, so payloads without an
 * `orgId` (results, summaries, plain strings) and every payload written before binding existed stay
 * under the configured key and only the operators' organisation may decode them at /codec.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { METADATA_ENCODING_KEY, type DataConverter, type Payload, type PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const METADATA_ENCRYPTION_KEY_ID = 'encryption-key-id';
/** Clear metadata naming the organisation a payload's key was derived for. */
export const METADATA_ENCRYPTION_ORG = 'encryption-org';

const CIPHER = 'aes-256-gcm';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** Key ids travel in metadata and in PAYLOAD_DECRYPTION_KEYS (`id:key,…`), so no `:` or `,`. */
const KEY_ID_PATTERN = /^[\w.-]{1,100}$/;
const BASE64_PATTERN = /^[A-Za-z0-9+/_-]+={0,2}$/;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

export type PayloadCodecErrorCode = 'missing_key_id' | 'unknown_key_id' | 'decryption_failed' | 'malformed_payload';

/** A payload this codec cannot decode. The codec server answers these with 400, never 500. */
export class PayloadCodecError extends Error {
  constructor(
    readonly code: PayloadCodecErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'PayloadCodecError';
  }
}

export interface PayloadCodecOptions {
  /** Base64 of 32 random bytes: encrypts every new payload (and decrypts those written with it). */
  key: string;
  /** Written into each payload's metadata, so the right key can be chosen when it is read back. */
  keyId: string;
  /** Retired keys by id, still needed to read histories written with them (decrypt only). */
  decryptionKeys?: Readonly<Record<string, string>>;
}

/** Who asks the codec server: the caller's organisation, and whether it is the operators' one. */
export interface CodecCaller {
  orgId: string;
  /** The operators' organisation (ADMIN_ORG_ID) decodes every payload. */
  admin: boolean;
}

/** The codec plus what the codec server needs: decoding on behalf of a caller, encoding for its organisation. */
export interface OrgPayloadCodec extends PayloadCodec {
  /**
   * Decodes the payloads `caller` may read; any other encrypted payload comes back unchanged (still
   * ciphertext), so nothing about it, not even whether it decrypts, reaches the caller.
   */
  decodeFor(payloads: Payload[], caller: CodecCaller): Promise<Payload[]>;
  /** Encrypts bound to `orgId`, whatever the payloads say. */
  encodeFor(payloads: Payload[], orgId: string): Promise<Payload[]>;
}

/** The AES-256-GCM codec: encrypts with the active key, decrypts with whichever key a payload names. */
export function createPayloadCodec(opts: PayloadCodecOptions): OrgPayloadCodec {
  return new AesGcmPayloadCodec(buildKeyRing(opts.decryptionKeys ?? {}, { id: opts.keyId, key: opts.key }), opts.keyId);
}

/** The part of the configuration (lib/config.ts) that decides whether payloads are encrypted. */
export interface PayloadEncryptionConfig {
  readonly PAYLOAD_ENCRYPTION_KEY?: string;
  readonly PAYLOAD_ENCRYPTION_KEY_ID: string;
  /** `id:base64key` entries of retired keys. */
  readonly PAYLOAD_DECRYPTION_KEYS?: readonly string[];
}

/**
 * The codec the configuration asks for, or undefined when encryption is off. With only
 * PAYLOAD_DECRYPTION_KEYS set the codec is decrypt-only: new payloads stay plain, old ones still read.
 */
export function payloadCodecFor(config: PayloadEncryptionConfig): OrgPayloadCodec | undefined {
  const decryptionKeys = parseDecryptionKeys(config.PAYLOAD_DECRYPTION_KEYS ?? []);
  if (config.PAYLOAD_ENCRYPTION_KEY) {
    return createPayloadCodec({
      key: config.PAYLOAD_ENCRYPTION_KEY,
      keyId: config.PAYLOAD_ENCRYPTION_KEY_ID,
      decryptionKeys,
    });
  }
  if (Object.keys(decryptionKeys).length > 0) return new AesGcmPayloadCodec(buildKeyRing(decryptionKeys), undefined);
  return undefined;
}

/** `dataConverter` for Worker.create and every `new Client(…)`: undefined (SDK default) when encryption is off. */
export function dataConverterFor(config: PayloadEncryptionConfig): DataConverter | undefined {
  const codec = payloadCodecFor(config);
  return codec ? { payloadCodecs: [codec] } : undefined;
}

/** A new random key, base64 (what PAYLOAD_ENCRYPTION_KEY takes). */
export function generateKey(): string {
  return randomBytes(KEY_BYTES).toString('base64');
}

/** True when the payload carries `encoding: binary/encrypted`. */
export function isEncryptedPayload(payload: Payload): boolean {
  const encoding = payload.metadata?.[METADATA_ENCODING_KEY];
  return encoding != null && fromUtf8.decode(encoding) === ENCRYPTED_ENCODING;
}

/** Org ids travel in clear metadata; same bound as the API's ids. */
const MAX_ORG_ID_LENGTH = 200;
const HKDF_INFO_PREFIX = 'agent-orchestrator payload key v1; org=';

class AesGcmPayloadCodec implements OrgPayloadCodec {
  private readonly orgKeys = new Map<string, Buffer>();

  constructor(
    private readonly keys: ReadonlyMap<string, Buffer>,
    /** undefined: decrypt-only, encode leaves payloads as they are. */
    private readonly activeKeyId: string | undefined,
  ) {}

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => this.encodeOne(payload, orgOf(payload)));
  }

  async encodeFor(payloads: Payload[], orgId: string): Promise<Payload[]> {
    return payloads.map((payload) => this.encodeOne(payload, orgId));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => this.decodeOne(payload));
  }

  async decodeFor(payloads: Payload[], caller: CodecCaller): Promise<Payload[]> {
    return payloads.map((payload) => {
      if (!isEncryptedPayload(payload)) return payload;
      const boundTo = payloadOrg(payload);
      const allowed = caller.admin || (boundTo !== undefined && boundTo === caller.orgId);
      return allowed ? this.decodeOne(payload) : payload;
    });
  }

  private encodeOne(payload: Payload, orgId: string | undefined): Payload {
    const keyId = this.activeKeyId;
    if (keyId === undefined) return payload;
    const bound = orgId !== undefined && orgId.length > 0 && orgId.length <= MAX_ORG_ID_LENGTH ? orgId : undefined;
    const metadata: Record<string, Uint8Array> = {
      [METADATA_ENCODING_KEY]: utf8.encode(ENCRYPTED_ENCODING),
      [METADATA_ENCRYPTION_KEY_ID]: utf8.encode(keyId),
    };
    if (bound !== undefined) metadata[METADATA_ENCRYPTION_ORG] = utf8.encode(bound);
    return {
      metadata,
      data: encrypt(temporal.api.common.v1.Payload.encode(payload).finish(), this.keyFor(keyId, bound)),
    };
  }

  private decodeOne(payload: Payload): Payload {
    // Anything not encrypted by us (histories from before encryption was enabled) passes untouched.
    if (!isEncryptedPayload(payload)) return payload;
    const keyIdBytes = payload.metadata?.[METADATA_ENCRYPTION_KEY_ID];
    if (keyIdBytes == null || keyIdBytes.length === 0) {
      throw new PayloadCodecError(
        'missing_key_id',
        `encrypted payload has no "${METADATA_ENCRYPTION_KEY_ID}" metadata`,
      );
    }
    const keyId = fromUtf8.decode(keyIdBytes);
    if (!this.keys.has(keyId)) {
      const known = [...this.keys.keys()].map((id) => `"${id}"`).join(', ');
      throw new PayloadCodecError(
        'unknown_key_id',
        `payload is encrypted with key id "${keyId}", which is not configured here (known: ${known}); ` +
          'set PAYLOAD_ENCRYPTION_KEY_ID/PAYLOAD_ENCRYPTION_KEY to it or add it to PAYLOAD_DECRYPTION_KEYS',
      );
    }
    const orgId = payloadOrg(payload);
    if (orgId !== undefined && (orgId.length === 0 || orgId.length > MAX_ORG_ID_LENGTH)) {
      throw new PayloadCodecError(
        'malformed_payload',
        `encrypted payload names an invalid organisation in "${METADATA_ENCRYPTION_ORG}"`,
      );
    }
    const plaintext = decrypt(payload.data ?? new Uint8Array(), this.keyFor(keyId, orgId), keyId);
    try {
      return temporal.api.common.v1.Payload.decode(plaintext);
    } catch (err) {
      throw new PayloadCodecError(
        'malformed_payload',
        `decrypted payload (key id "${keyId}") is not a Payload: ${String(err)}`,
      );
    }
  }

  /** The configured key itself for unbound payloads; for an organisation, a key derived from it, so one org's key opens nothing else. */
  private keyFor(keyId: string, orgId: string | undefined): Buffer {
    const master = this.keys.get(keyId)!;
    if (orgId === undefined) return master;
    const cacheKey = `${keyId}\u0000${orgId}`;
    let key = this.orgKeys.get(cacheKey);
    if (!key) {
      key = Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), utf8.encode(HKDF_INFO_PREFIX + orgId), KEY_BYTES));
      // Organisations are few; the bound only stops forged metadata from growing the cache without end.
      if (this.orgKeys.size >= 10_000) this.orgKeys.clear();
      this.orgKeys.set(cacheKey, key);
    }
    return key;
  }
}

/** The organisation an encrypted payload is bound to, from its clear metadata; undefined when unbound. */
export function payloadOrg(payload: Payload): string | undefined {
  const bytes = payload.metadata?.[METADATA_ENCRYPTION_ORG];
  return bytes == null ? undefined : fromUtf8.decode(bytes);
}

/**
 * The top-level `orgId` of a JSON object payload, the owner of every workflow and activity input this
 * project builds. Cheap checks first: most payloads are not objects or never mention `orgId`.
 */
function orgOf(payload: Payload): string | undefined {
  const encoding = payload.metadata?.[METADATA_ENCODING_KEY];
  if (encoding == null || fromUtf8.decode(encoding) !== 'json/plain' || !payload.data || payload.data[0] !== 0x7b)
    return undefined;
  const text = fromUtf8.decode(payload.data);
  if (!text.includes('"orgId"')) return undefined;
  try {
    const value = (JSON.parse(text) as { orgId?: unknown }).orgId;
    return typeof value === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}

function encrypt(plaintext: Uint8Array, key: Buffer): Uint8Array {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv(CIPHER, key, iv, { authTagLength: TAG_BYTES });
  return Buffer.concat([iv, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

function decrypt(data: Uint8Array, key: Buffer, keyId: string): Uint8Array {
  if (data.length < IV_BYTES + TAG_BYTES) {
    throw new PayloadCodecError(
      'malformed_payload',
      `encrypted payload (key id "${keyId}") is too short: ${data.length} bytes`,
    );
  }
  const iv = data.subarray(0, IV_BYTES);
  const tag = data.subarray(data.length - TAG_BYTES);
  const decipher = createDecipheriv(CIPHER, key, iv, { authTagLength: TAG_BYTES });
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
  } catch {
    throw new PayloadCodecError(
      'decryption_failed',
      `payload does not decrypt with key id "${keyId}": wrong key for that id, or the data was altered`,
    );
  }
}

/** Validates and decodes keys; the active one wins over a decryption key of the same id. */
function buildKeyRing(
  decryptionKeys: Readonly<Record<string, string>>,
  active?: { id: string; key: string },
): Map<string, Buffer> {
  const ring = new Map<string, Buffer>();
  for (const [id, key] of Object.entries(decryptionKeys))
    ring.set(checkKeyId(id), parseKey(key, `decryption key "${id}"`));
  if (active) ring.set(checkKeyId(active.id), parseKey(active.key, 'PAYLOAD_ENCRYPTION_KEY'));
  return ring;
}

function checkKeyId(id: string): string {
  if (!KEY_ID_PATTERN.test(id))
    throw new Error(`invalid encryption key id "${id}": use 1-100 letters, digits, '_', '.' or '-'`);
  return id;
}

function parseKey(value: string, what: string): Buffer {
  const key = BASE64_PATTERN.test(value) ? Buffer.from(value, 'base64') : undefined;
  if (!key || key.length !== KEY_BYTES) {
    throw new Error(
      `${what} must be base64 of ${KEY_BYTES} bytes; generate one with: node -e "console.log(require('crypto').randomBytes(32).toString('base64'))"`,
    );
  }
  return key;
}

/** `id:base64key` entries (PAYLOAD_DECRYPTION_KEYS) to a map of id to key. */
export function parseDecryptionKeys(entries: readonly string[]): Record<string, string> {
  const keys: Record<string, string> = {};
  for (const [index, entry] of entries.entries()) {
    const at = entry.indexOf(':');
    // The entry itself is not echoed: it may be a bare key.
    if (at <= 0) throw new Error(`PAYLOAD_DECRYPTION_KEYS entry ${index + 1} must be "keyId:base64key"`);
    keys[entry.slice(0, at).trim()] = entry.slice(at + 1).trim();
  }
  return keys;
}
