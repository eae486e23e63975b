import { parseArgs, type ParseArgsConfig } from "node:util";
import { ConfigError, loadConfig } from "../lib/config.ts";
import { AppError } from "../lib/errors.ts";
import { isKvConnectUrl, KvFileError, openKv } from "../lib/db/kv.ts";
import { commandLineActor } from "../lib/auth/operators.ts";
import { createServer, type ServerParts } from "../server.ts";

/**
 * Opens the same KV and provider the server uses, for operator commands. A KV file that is not there is not made
 * unless NEW_DATABASE=1 asks for it: a command pointed at the wrong file would otherwise make a new, empty database
 * and, say, print a working-looking API key for a shop the server never sees.
 */
export async function openCliServer(): Promise<ServerParts> {
  try {
    const config = { ...loadConfig(Deno.env.toObject()), demo: false };
    const isNew = config.kvPath !== undefined && isLocalFile(config.kvPath) && !exists(config.kvPath);
    if (isNew && Deno.env.get("NEW_DATABASE") !== "1") {
      fail(
        `no database at ${config.kvPath}: the server makes it when it first starts. Point DENO_KV_PATH at the ` +
          `server's file (unset for both uses the default), or set NEW_DATABASE=1 to make a new, empty one there.`,
      );
    }
    const server = await createServer(config, await openKv(config.kvPath));
    if (isNew) console.error(`note: ${config.kvPath} did not exist; a new, empty database was made there`);
    return server;
  } catch (err) {
    if (err instanceof ConfigError || err instanceof KvFileError) fail(err.message);
    throw err;
  }
}

/** A KV path that names a file here (not ":memory:" or a KV Connect URL). */
function isLocalFile(path: string): boolean {
  return path !== ":memory:" && !isKvConnectUrl(path);
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * A command's options and positionals (node:util's parseArgs over Deno.args); an unknown option or one missing its
 * value ends the command with the message and the usage, not a stack trace. An option that takes a value takes the
 * next argument whatever it begins with (`--note "-5 EUR kept"`, `--name -h`), unless that is one of the command's
 * options (see withValuesJoined): free text may begin with a dash, and parseArgs refuses such a value as ambiguous
 * unless written `--note=-5 EUR kept`. Each command then refuses a positional argument it does not take: the rest of a
 * value left unquoted (`--name My Shop` names the shop "My") would otherwise be dropped without a word.
 * An option that takes one value is refused when given twice (see refuseRepeatedOptions), and any option given an
 * empty value (refuseEmptyValues).
 */
export function parseCommandArgs<T extends ParseArgsConfig["options"]>(options: T, usage: string) {
  try {
    const args = withValuesJoined(Deno.args, options ?? {});
    exitWithUsageIfAsked(args, usage);
    const { tokens, ...parsed } = parseArgs({ args, allowPositionals: true, options, tokens: true });
    refuseRepeatedOptions(tokens, options ?? {});
    refuseEmptyValues(tokens);
    const given = new Set(tokens.flatMap((t) => t.kind === "option" ? [t.name] : []));
    return { ...parsed, given };
  } catch (err) {
    if (err instanceof TypeError) fail(`${err.message}\n${usage}`);
    throw err;
  }
}

/**
 * The arguments with each value-taking option's value written into it (`--note=VALUE`); all after `--` as they are. A
 * value that is one of the command's own options (`--name --allowed-host=shop.example`) is refused (TypeError, as
 * parseArgs refuses): its option's value was forgotten, and taken it would do the command with both options wrong.
 */
function withValuesJoined(args: string[], options: NonNullable<ParseArgsConfig["options"]>): string[] {
  const isOption = (arg: string) => arg.startsWith("--") && Object.hasOwn(options, arg.slice(2).split("=")[0]);
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") return [...out, ...args.slice(i)];
    const takesValue = isOption(arg) && !arg.includes("=") && options[arg.slice(2)].type === "string";
    if (takesValue && i + 1 < args.length && isOption(args[i + 1])) {
      throw new TypeError(`Option '${arg}' has no value: '${args[i + 1]}' after it is an option of this command`);
    }
    out.push(takesValue && i + 1 < args.length ? `${arg}=${args[++i]}` : arg);
  }
  return out;
}

/**
 * An option given an empty value is refused (TypeError, as parseArgs refuses): `--currency ""` (a variable that came
 * out blank) is not "no currency", and taken as none, `shop route` set the shop's default account instead of adding a
 * rule. No option of ours means anything by an empty value.
 */
function refuseEmptyValues(tokens: { kind: string; rawName?: string; value?: string }[]) {
  const empty = tokens.find((t) => t.kind === "option" && t.value === "");
  if (empty) throw new TypeError(`Option '${empty.rawName}' has an empty value`);
}

/**
 * An option that takes one value given twice is refused (TypeError, as parseArgs refuses): parseArgs keeps the last
 * and drops the first without a word, so `--actor a@x ... --actor b@x` would be audited under b, and a second --note
 * or --name would replace the first the operator meant.
 */
function refuseRepeatedOptions(
  tokens: { kind: string; name?: string }[],
  options: NonNullable<ParseArgsConfig["options"]>,
) {
  const seen = new Set<string>();
  for (const { kind, name } of tokens) {
    if (kind !== "option" || !name || options[name]?.multiple) continue;
    if (seen.has(name)) throw new TypeError(`Option '--${name}' is given twice: give it once`);
    seen.add(name);
  }
}

/**
 * `--help` or `-h` as a flag prints the usage and ends the command with 0, before any store is opened: parseArgs
 * would call it an unknown option and suggest passing it as an argument after `--`. An option's value (`--note -h`, as
 * withValuesJoined wrote it) or an argument after `--` is not one.
 */
function exitWithUsageIfAsked(args: string[], usage: string) {
  const flags = args.includes("--") ? args.slice(0, args.indexOf("--")) : args;
  if (flags.some((arg) => arg === "--help" || arg === "-h")) {
    console.log(usage);
    Deno.exit(0);
  }
}

/**
 * Ends the command with the usage when an option it was given is not one `command` takes: parseArgs takes every
 * option any of a script's commands has, and one the command does not read (`payment resend --note ...`, the note
 * never recorded) would otherwise be dropped without a word. `given` is parseCommandArgs's. --actor is taken by
 * every command that has it: one that changes nothing records no one, and scripts pass it to every call.
 */
export function refuseOptionsNotTaken(given: Set<string>, taken: readonly string[], command: string, usage: string) {
  const extra = [...given].filter((name) => name !== "actor" && !taken.includes(name));
  if (extra.length) fail(`${command} takes no ${extra.map((name) => `--${name}`).join(" or ")}\n${usage}`);
}

/** The option every command that writes an audit entry takes: the operator who runs it. */
export const ACTOR_OPTION = { actor: { type: "string" } } as const;

/** The usage's line for --actor, the same in every command. */
export const ACTOR_USAGE =
  "--actor: your operator email, for the audit log (required where a command changes anything)";

/**
 * --actor's email for a command that writes an audit entry, or the command ends (exit 2) before any store is opened:
 * a shell on our servers knows no sign-in, so the operator names themselves. runCommand checks it is an operator's.
 */
export function requireActor(actor: string | undefined, command: string, usage: string): string {
  if (!actor) fail(`--actor EMAIL is required: ${command} is audited under the operator who runs it.\n${usage}`);
  return actor;
}

export function fail(message: string): never {
  console.error(message);
  Deno.exit(2);
}

export function printJson(value: unknown) {
  console.log(JSON.stringify(value, null, 2));
}

/**
 * Runs an operator command against the server's store: domain errors become
 * one line on stderr and exit code 2; the store is always closed. `givenAs` names, by the field an error names (list
 * positions left out: `rules.2.type` is `rules.type`), the option or variable the operator gave it with, so the line
 * says `ACCOUNT_API_TOKEN`, not the API's `credentials.apiToken`. `actor` (requireActor's email) is checked before the
 * command does anything, and the command gets it as the audit log names it (`EMAIL (cli)`); "" when none was given.
 */
export async function runCommand(
  command: (server: ServerParts, actor: string) => Promise<void>,
  opts: { givenAs?: Record<string, string>; actor?: string } = {},
) {
  const server = await openCliServer();
  const givenAs: Record<string, string> = { actor: "--actor", ...opts.givenAs };
  try {
    // Checked first: an action is never recorded under a name that is not an active operator's.
    const actor = opts.actor === undefined ? "" : await commandLineActor(server.ctx, opts.actor);
    await command(server, actor);
  } catch (err) {
    if (err instanceof AppError) {
      const fields = err.fields && Object.fromEntries(
        Object.entries(err.fields).map(([field, problem]) => {
          const given = givenAs[field.replace(/\.\d+(?=\.|$)/g, "")];
          return [given ?? field, problem];
        }),
      );
      fail(`${err.code}: ${err.message}${fields ? " " + JSON.stringify(fields) : ""}`);
    }
    throw err;
  } finally {
    await server.close();
    server.ctx.kv.close();
  }
}
