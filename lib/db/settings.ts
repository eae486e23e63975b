/** Small named values the app keeps for itself (zero-config sandbox credentials, the demo shop). */
const settingKey = (name: string) => ["settings", name] as const;

export async function getSetting<T>(kv: Deno.Kv, name: string): Promise<T | null> {
  return (await kv.get<T>(settingKey(name))).value;
}

/**
 * Stores a setting only if it is not set yet; returns whichever value won.
 * Reads first: at start-up the setting is nearly always there, and a read is
 * cheaper than a commit whose check fails.
 */
export async function initSetting<T>(kv: Deno.Kv, name: string, value: T): Promise<{ value: T; created: boolean }> {
  const existing = await getSetting<T>(kv, name);
  if (existing !== null) return { value: existing, created: false };
  const res = await kv.atomic().check({ key: settingKey(name), versionstamp: null }).set(settingKey(name), value)
    .commit();
  if (res.ok) return { value, created: true };
  return { value: (await getSetting<T>(kv, name))!, created: false };
}
