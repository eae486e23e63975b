import { type Context, Hono } from "hono";
import type { ComponentChildren } from "preact";
import type { AppContext } from "../../lib/context.ts";
import { listScopedDeliveries } from "../../lib/console.ts";
import { getShop, listShops } from "../../lib/db/shops.ts";
import { resendPostback } from "../../lib/payments/admin.ts";
import { replayFailedDeliveries, type ReplayResult } from "../../lib/relay/replay.ts";
import { renderPage } from "../../components/html.tsx";
import { AdminLayout, ConfirmStep, CsrfField, Flash, formatTime } from "../../components/admin_layout.tsx";
import { DeliveryTable } from "../../components/deliveries.tsx";
import type { ConsoleEnv } from "./_session.ts";
import { hasIdShape } from "../../lib/ids.ts";
import { type PageNote, pageNoteStatus, refusalShownOnPage } from "../_page_note.ts";

/**
 * Asked before a replay, which sends many postbacks to one shop at once: it names the shop and the time, on the page
 * without JavaScript and in the browser's dialog alike (there as `{shopId}` and `{since}`, which the page's script
 * fills with the shop chosen and the time typed).
 */
function replayQuestion(shop: string, since: string): string {
  return `Send the failed and retrying postbacks of ${shop} whose last attempt failed since ${since} now? Those it refused with 410 Gone are left alone.`;
}

/** Postbacks that need attention across shops: resend one, or replay a shop's failures since a time. */
export function deliveryRoutes(ctx: AppContext) {
  const app = new Hono<ConsoleEnv>();

  /**
   * The list, with a line on top: what an action did, or why it was refused (then 422, or the note's status). A
   * replay sent without what it needs comes back with what was chosen and typed, and each missing field marked.
   */
  const listPage = async (c: Context<ConsoleEnv>, note?: PageNote, replay?: ReplayAsSent) => {
    const shopId = c.req.query("shopId") || undefined;
    const replayShopId = replay ? (hasIdShape("shop", replay.shopId) ? replay.shopId : undefined) : shopId;
    const errors = replay?.errors ?? {};
    const [deliveries, shops] = await Promise.all([
      listScopedDeliveries(ctx, "operator", { shopId }),
      listShops(ctx.kv),
    ]);
    const sinceDefault = replaySinceDefault(ctx.now(), ctx.config.postbackScheduleMs);
    const shopChoices = (chosen: string | undefined) =>
      shops.map((s) => <option key={s.id} value={s.id} selected={s.id === chosen}>{s.name}</option>);
    return c.html(
      renderPage(
        <AdminLayout title="Deliveries" path="/admin/deliveries" email={c.var.operator.email} csrf={c.var.csrf}>
          {note && <Flash kind={note.kind}>{note.text}</Flash>}
          <p class="muted">Postbacks that failed at least once and are not delivered, newest first.</p>
          <form method="get" action="/admin/deliveries" class="filters" role="search">
            <label>
              Shop
              <select name="shopId">
                <option value="">All shops</option>
                {shopChoices(shopId)}
              </select>
            </label>
            <button type="submit">Filter</button>
          </form>
          <DeliveryTable
            deliveries={deliveries}
            paymentBase="/admin/payments"
            resendAction="/admin/deliveries/resend"
            csrf={c.var.csrf}
            now={ctx.now()}
            shopNames={new Map(shops.map((s) => [s.id, s.name]))}
          />
          <section class="card">
            <h2>Replay a shop's failed and retrying postbacks</h2>
            <form
              method="post"
              action="/admin/deliveries/replay"
              class="filters"
              data-busy="Replaying…"
              data-confirm={replayQuestion("{shopId}", "{since} UTC")}
            >
              <CsrfField token={c.var.csrf} />
              {/* No shop is taken for granted: the operator picks one, unless the list above is filtered to it. */}
              <ReplayField id="replay-shop" label="Shop" error={errors.shopId}>
                {(aria) => (
                  <select name="shopId" required {...aria}>
                    <option value="" selected={!replayShopId}>Choose a shop…</option>
                    {shopChoices(replayShopId)}
                  </select>
                )}
              </ReplayField>
              <ReplayField
                id="replay-since"
                label="Failed since (UTC)"
                error={errors.since}
                hint={`Filled in with ${sinceDefault.ago}: every postback still on its schedule last failed since then. Earlier for older failed ones.`}
              >
                {(aria) => (
                  <input
                    type="datetime-local"
                    name="since"
                    value={replay ? replay.since : sinceDefault.value}
                    required
                    {...aria}
                  />
                )}
              </ReplayField>
              <button type="submit">Replay</button>
            </form>
          </section>
        </AdminLayout>,
      ),
      pageNoteStatus(note, c.req.method),
    );
  };

  app.get("/", (c) => listPage(c, deliveriesDoneNote(c.req.query("done"))));

  app.post("/resend", async (c) => {
    const { paymentId = "", deliveryId } = c.var.form;
    // Refused (one under way): said on the list instead of an error page. No such postback is a 404.
    return await refusalShownOnPage("Not resent", async () => {
      const d = await resendPostback(ctx, paymentId, { actor: c.var.operator.email, deliveryId });
      return c.redirect(`/admin/deliveries?done=resent-${d.status}`, 303);
    }, (note) => listPage(c, note));
  });

  app.post("/replay", async (c) => {
    const { shopId = "", since = "", after } = c.var.form;
    const sinceMs = Date.parse(since.length === 16 ? since + ":00Z" : since);
    // A shop deleted meanwhile, or an id typed by hand (of any shape: one that cannot be a shop's never reaches KV,
    // which refuses over-long keys): there is no such shop, said on the list with nothing replayed or audited.
    const shop = hasIdShape("shop", shopId) ? await getShop(ctx.kv, shopId) : null;
    const errors: ReplayAsSent["errors"] = {};
    if (!shop) errors.shopId = shopId ? "No such shop." : "Choose the shop whose failed postbacks to send again.";
    if (Number.isNaN(sinceMs)) errors.since = "Give the time (UTC) the postbacks failed since.";
    if (!shop || errors.since) {
      // Without a shop or a time (a browser that skipped `required`, a form sent by hand) the form came incomplete
      // (400); complete but naming no shop, it is refused (422). Either way the list again, as sent.
      const note: PageNote = shopId && !errors.since
        ? { kind: "bad", text: "Not replayed: there is no such shop." }
        : { kind: "bad", text: "Not replayed: choose a shop and a time.", status: 400 };
      return await listPage(c, note, { shopId: shop ? shopId : "", since: since.slice(0, 40), errors });
    }
    // Where a replay goes on (see below): a postback id, as it becomes part of a KV key.
    if (after !== undefined && !hasIdShape("postback", after)) {
      return await listPage(c, { kind: "bad", text: "Not replayed: start the replay again here.", status: 400 });
    }
    if (c.var.form.confirm !== "yes") {
      // Without the page's script the question comes as a page of its own, away from the form: it names the shop
      // and the time it asks about.
      return c.html(renderPage(
        <AdminLayout title="Please confirm" path="/admin/deliveries" email={c.var.operator.email} csrf={c.var.csrf}>
          <ConfirmStep
            question={replayQuestion(shop.name, formatTime(sinceMs))}
            button="Replay"
            // Sends the shop's postbacks again: nothing is taken away.
            destructive={false}
            fields={{ shopId, since }}
            action="/admin/deliveries/replay"
            csrf={c.var.csrf}
            cancel="/admin/deliveries"
          />
        </AdminLayout>,
      ));
    }
    const replayed = await replayFailedDeliveries(ctx, shopId, sinceMs, { actor: c.var.operator.email, after });
    const { queued, inFlight, resumeAfter } = replayed;
    if (resumeAfter === null) return c.redirect(`/admin/deliveries?done=replayed-${queued}-${inFlight}`, 303);
    // A request does a bounded share of a large backlog (REPLAY_BATCH); the operator goes on with one click.
    return c.html(renderPage(
      <AdminLayout title="Replay" path="/admin/deliveries" email={c.var.operator.email} csrf={c.var.csrf}>
        <Flash kind="ok">{`${replayNote(replayed)} More are left to look at.`}</Flash>
        <ConfirmStep
          question="Go on with the replay?"
          button="Go on"
          destructive={false}
          fields={{ shopId, since, after: resumeAfter }}
          action="/admin/deliveries/replay"
          csrf={c.var.csrf}
          cancel="/admin/deliveries"
        />
      </AdminLayout>,
    ));
  });
  return app;
}

/** A replay form as it was sent, and what is missing from it, by field. */
interface ReplayAsSent {
  shopId: string;
  since: string;
  errors: { shopId?: string; since?: string };
}

type FieldAria = { id: string; "aria-invalid"?: "true"; "aria-describedby"?: string; autofocus?: boolean };

/**
 * A labelled control of the replay form with its error beside it (else its hint); the first one at fault takes the
 * keyboard.
 */
function ReplayField(
  props: { id: string; label: string; error?: string; hint?: string; children: (aria: FieldAria) => ComponentChildren },
) {
  const errorId = `${props.id}-error`;
  const hintId = `${props.id}-hint`;
  return (
    <div class={props.error ? "field invalid" : "field"}>
      <label for={props.id}>{props.label}</label>
      {props.children({
        id: props.id,
        ...(props.error
          ? { "aria-invalid": "true", "aria-describedby": errorId, autofocus: true }
          : props.hint
          ? { "aria-describedby": hintId }
          : {}),
      })}
      {props.error
        ? <small id={errorId} class="error">{props.error}</small>
        : props.hint && <small id={hintId} class="muted">{props.hint}</small>}
    </div>
  );
}

/**
 * The replay form's time, filled in: as long ago as the postback schedule runs (its delays summed, in whole hours,
 * the time down to the hour), so every postback still retrying on its schedule had its last attempt fail since then,
 * however long ago it was made or resent (one a shop's Retry-After held back longer than the whole schedule may have
 * failed earlier). A datetime-local value, in UTC as the label says.
 */
function replaySinceDefault(now: number, scheduleMs: readonly number[]): { ago: string; value: string } {
  const hours = Math.max(1, Math.ceil(scheduleMs.reduce((sum, ms) => sum + ms, 0) / 3_600_000));
  const since = Math.floor((now - hours * 3_600_000) / 3_600_000) * 3_600_000;
  return { ago: hours === 1 ? "an hour ago" : `${hours} hours ago`, value: new Date(since).toISOString().slice(0, 16) };
}

/**
 * What an action's redirect says happened (`?done=`), in our words only: a code outside these shows nothing, so a
 * link cannot put a message of its own on the page.
 */
export function deliveriesDoneNote(done: string | undefined): PageNote | undefined {
  const [what, result, leftInFlight] = (done ?? "").split("-", 3);
  if (what === "resent" && result === "delivered") return { kind: "ok", text: "Postback resent and delivered." };
  if (what === "resent" && (result === "pending" || result === "failed")) {
    return {
      kind: "bad",
      text: `Postback resent, not delivered: it is ${result === "pending" ? "retrying" : "failed"}.`,
    };
  }
  // Links from before the count of those left in flight (replayed-N) say none were.
  if (what === "replayed" && /^\d{1,9}$/.test(result ?? "") && /^\d{1,9}$/.test(leftInFlight ?? "0")) {
    return { kind: "ok", text: replayNote({ queued: Number(result), inFlight: Number(leftInFlight ?? 0) }) };
  }
  return undefined;
}

/**
 * What a replay did: those sent again, and those it left alone because they were being sent at that moment (another
 * attempt holds them; replaying them would send them twice), which an operator would otherwise look for among the
 * ones replayed. The attempts it started end after the page is made: the list under the note shows those postbacks
 * as they were then (due now or being sent, with the error of the attempt before), which is said, rather than
 * letting the old error read as the replay's outcome.
 */
function replayNote({ queued, inFlight }: Pick<ReplayResult, "queued" | "inFlight">): string {
  const were = inFlight === 1 ? "was" : "were";
  const leftAlone = inFlight ? `; ${inFlight} ${were} being sent already and ${were} left alone` : "";
  if (queued === 0) {
    return inFlight ? `No postback was sent again${leftAlone}.` : "No postback was sent again: none needed it.";
  }
  const sent = `Sent ${queued} ${queued === 1 ? "postback" : "postbacks"} again${leftAlone}.`;
  return `${sent} They are being tried now, so the list below shows them as due now or being sent, with the error ` +
    "of the attempt before: reload in a moment to see which were delivered.";
}
