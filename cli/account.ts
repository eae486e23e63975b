/**
 * Operator commands for provider accounts:
 *   deno task account create --label LABEL --org-id ORG --api-url URL [--currency C]... --actor EMAIL
 *     (the token and webhook secret come from ACCOUNT_API_TOKEN and ACCOUNT_WEBHOOK_SECRET,
 *     so they stay out of shell history and process listings)
 *   ACCOUNT_SECRET_KEY=sk_... ACCOUNT_WEBHOOK_SECRET=whsec_... \
 *   deno task account create --provider stripe --label LABEL --org-id ORG --connected-account acct_...
 *     [--currency C]... [--publishable-key pk_...] --actor EMAIL   (the publishable key is public; needed for Stripe's
 *     embedded checkout)
 *   deno task account list
 *   deno task account disable ACCOUNT_ID --actor EMAIL
 *   deno task account enable ACCOUNT_ID --actor EMAIL
 * All but list are audited under the operator who runs them: --actor is their (active) operator email, recorded as
 * `EMAIL (cli)`.
 * Credentials are never printed back.
 */
import { createAccount, listAllAccounts, setAccountActive } from "../lib/accounts/mod.ts";
import { accountWebhookPath, type ProviderAccount } from "../lib/accounts/types.ts";
import {
  ACTOR_OPTION,
  ACTOR_USAGE,
  fail,
  parseCommandArgs,
  printJson,
  refuseOptionsNotTaken,
  requireActor,
  runCommand,
} from "./_context.ts";

const USAGE = `usage:
  ACCOUNT_API_TOKEN=... ACCOUNT_WEBHOOK_SECRET=... \\
  deno task account create --label LABEL --org-id ORG --api-url URL [--currency C]... --actor EMAIL
  ACCOUNT_SECRET_KEY=... ACCOUNT_WEBHOOK_SECRET=... \\
  deno task account create --provider stripe --label LABEL --org-id ORG --connected-account acct_... \\
    [--currency C]... [--publishable-key pk_...] --actor EMAIL
  deno task account list
  deno task account disable ACCOUNT_ID --actor EMAIL
  deno task account enable ACCOUNT_ID --actor EMAIL
${ACTOR_USAGE}`;

const { values, positionals, given } = parseCommandArgs({
  provider: { type: "string", default: "bansky" },
  label: { type: "string" },
  "org-id": { type: "string" },
  "api-url": { type: "string" },
  currency: { type: "string", multiple: true },
  "connected-account": { type: "string" },
  "publishable-key": { type: "string" },
  ...ACTOR_OPTION,
}, USAGE);

/** Where the operator gives each field createAccount checks: an option, or the variable a secret comes from. */
const GIVEN_AS = {
  provider: "--provider",
  label: "--label",
  orgId: "--org-id",
  currencies: "--currency",
  "credentials.apiUrl": "--api-url",
  "credentials.apiToken": "ACCOUNT_API_TOKEN",
  "credentials.secretKey": "ACCOUNT_SECRET_KEY",
  "credentials.webhookSecret": "ACCOUNT_WEBHOOK_SECRET",
  "credentials.connectedAccountId": "--connected-account",
  "credentials.publishableKey": "--publishable-key",
};

const shown = (a: ProviderAccount) => ({
  ...a,
  createdAt: new Date(a.createdAt).toISOString(),
  updatedAt: new Date(a.updatedAt).toISOString(),
  credentialsUpdatedAt: new Date(a.credentialsUpdatedAt).toISOString(),
});

// Checked before the store is opened, as every command here: a wrong call gets the usage, not a word on the database.
const [cmd, id, ...extra] = positionals;
const valid = ((cmd === "create" || cmd === "list") && !id) ||
  ((cmd === "disable" || cmd === "enable") && id && !extra.length);
if (!valid) fail(USAGE);
// A Bansky account has no connected account or publishable key: given, they would be dropped.
const createOptions = ["provider", "label", "org-id", "api-url", "currency"];
const stripeOptions = [...createOptions, "connected-account", "publishable-key"];
const taken = cmd !== "create" ? [] : values.provider === "stripe" ? stripeOptions : createOptions;
refuseOptionsNotTaken(given, taken, `account ${cmd}`, USAGE);
const actorEmail = cmd === "list" ? undefined : requireActor(values.actor, `account ${cmd}`, USAGE);

await runCommand(async (server, actor) => {
  const ctx = server.ctx;
  if (cmd === "create") {
    const account = await createAccount(ctx, {
      provider: values.provider,
      label: values.label,
      orgId: values["org-id"],
      currencies: values.currency ?? [],
      credentials: values.provider === "stripe"
        ? {
          secretKey: Deno.env.get("ACCOUNT_SECRET_KEY"),
          webhookSecret: Deno.env.get("ACCOUNT_WEBHOOK_SECRET"),
          connectedAccountId: values["connected-account"],
          ...(values["publishable-key"] ? { publishableKey: values["publishable-key"] } : {}),
          ...(values["api-url"] ? { apiUrl: values["api-url"] } : {}),
        }
        : {
          apiUrl: values["api-url"],
          apiToken: Deno.env.get("ACCOUNT_API_TOKEN"),
          webhookSecret: Deno.env.get("ACCOUNT_WEBHOOK_SECRET"),
        },
    }, { actor });
    printJson({ ...shown(account), webhookPath: accountWebhookPath(account.id) });
  } else if (cmd === "list") {
    printJson((await listAllAccounts(ctx)).map(shown));
  } else {
    printJson(shown(await setAccountActive(ctx, id, cmd === "enable", { actor })));
  }
}, { givenAs: GIVEN_AS, actor: actorEmail });
