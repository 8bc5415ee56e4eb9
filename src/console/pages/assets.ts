import { readFileSync } from 'node:fs';

const TYPES = {
  'console.js': 'text/javascript; charset=utf-8',
  'console.css': 'text/css; charset=utf-8',
} as const;
export type AssetName = keyof typeof TYPES;

const cache = new Map<AssetName, { body: string; contentType: string }>();

/** The console's two static files (src/console/assets/), read once and kept. */
export function readAsset(name: AssetName): { body: string; contentType: string } | undefined {
  const contentType = Object.hasOwn(TYPES, name) ? TYPES[name] : undefined;
  if (contentType === undefined) return undefined;
  const hit = cache.get(name);
  if (hit !== undefined) return hit;
  let body: string;
  try {
    body = readFileSync(new URL(`../assets/${name}`, import.meta.url), 'utf8');
  } catch {
    return undefined;
  }
  const asset = { body, contentType };
  cache.set(name, asset);
  return asset;
}
