import { PROVIDER_NAMES } from '../../contract/definitions';
import type { Config } from '../../lib/config';
import { createAnthropicProvider } from './anthropic';
import { createOfflineProvider } from './offline';
import { createOpenAiProvider } from './openai';
import type { LlmProvider } from './types';

export class ProviderConfigError extends Error {}

/**
 * Builds providers lazily from the configuration, one client per provider for the process.
 * An agent names its provider; null means the deployment default (AI_PROVIDER, else the first key
 * present, else offline).
 */
export function createProviderRegistry(config: Config): { get(name: string | null): LlmProvider } {
  const cache = new Map<string, LlmProvider>();
  const timeoutMs = config.LLM_TIMEOUT_SECONDS * 1000;

  const build = (name: string): LlmProvider => {
    switch (name) {
      case 'offline':
        return createOfflineProvider();
      case 'openai':
        if (!config.OPENAI_API_KEY) throw new ProviderConfigError('provider "openai" needs OPENAI_API_KEY');
        return createOpenAiProvider({
          apiKey: config.OPENAI_API_KEY,
          baseURL: config.OPENAI_BASE_URL,
          defaultModel: config.OPENAI_MODEL,
          timeoutMs,
        });
      case 'anthropic':
        if (!config.ANTHROPIC_API_KEY) throw new ProviderConfigError('provider "anthropic" needs ANTHROPIC_API_KEY');
        return createAnthropicProvider({
          apiKey: config.ANTHROPIC_API_KEY,
          baseURL: config.ANTHROPIC_BASE_URL,
          defaultModel: config.ANTHROPIC_MODEL,
          timeoutMs,
        });
      case 'ollama':
      case 'openai-compatible':
        // Ollama and vLLM speak the OpenAI Chat Completions API under /v1. OPENAI_API_KEY belongs to OpenAI
        // and never goes to OLLAMA_BASE_URL: only OLLAMA_API_KEY does, and without it no credential is sent.
        return createOpenAiProvider({
          apiKey: config.OLLAMA_API_KEY ?? null,
          baseURL: `${config.OLLAMA_BASE_URL.replace(/\/+$/, '')}/v1`,
          defaultModel: config.OLLAMA_MODEL,
          timeoutMs,
          name: 'openai-compatible',
        });
      default:
        throw new ProviderConfigError(`unknown provider "${name}"; expected one of ${PROVIDER_NAMES.join(', ')}`);
    }
  };

  return {
    get(name) {
      const key = name ?? config.aiProvider;
      let provider = cache.get(key);
      if (!provider) {
        provider = build(key);
        cache.set(key, provider);
      }
      return provider;
    },
  };
}
