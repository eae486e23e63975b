import { type Context, Hono } from "hono";
import type { AppContext } from "../../lib/context.ts";
import { listOrphans, markOrphanHandled, previewOrphanHandling } from "../../lib/payments/orphans.ts";
import { renderPage } from "../../components/html.tsx";
import { AdminLayout, ConfirmStep, Flash } from "../../components/admin_layout.tsx";
import { handleOrphanQuestion, type OrphanRef, PaidOrphansList } from "../../components/paid_orphans.tsx";
import type { ConsoleEnv } from "./_session.ts";
import { type PageNote, pageNoteStatus, refusalShownOnPage } from "../_page_note.ts";

const BASE = "/admin/paid-orphans";

/** Paid orphans: the list, and an operator's mark that one is handled (asked first, audited). */
export function paidOrphanRoutes(ctx: AppContext) {
  const app = new Hono<ConsoleEnv>();

  const listPage = async (c: Context<ConsoleEnv>, flash?: PageNote, refused?: OrphanRef) => {
    const orphans = await listOrphans(ctx);
    return c.html(
      renderPage(
        <AdminLayout title="Paid orphans" path={BASE} email={c.var.operator.email} csrf={c.var.csrf}>
          {flash && <Flash kind={flash.kind}>{flash.text}</Flash>}
          <PaidOrphansList {...orphans} csrf={c.var.csrf} action={`${BASE}/handle`} refused={refused} />
        </AdminLayout>,
      ),
      pageNoteStatus(flash, c.req.method),
    );
  };

  // Only our own words after a mark: a link cannot claim one that did not happen.
  app.get("/", (c) =>
    listPage(
      c,
      c.req.query("done") === "handled"
        ? { kind: "ok", text: "Marked handled: its provider's news about it is acknowledged from now on." }
        : undefined,
    ));

  // The page's script asks first; without it the question is a page of its own, and its button sends confirm=yes.
  app.post("/handle", async (c) => {
    const form = c.var.form;
    const which = { accountId: form.accountId ?? "", ref: form.ref ?? "" };
    // Refused (no note, handled meanwhile): said on the list, the keyboard back on that orphan's note.
    return await refusalShownOnPage("Not marked", async () => {
      if (form.confirm !== "yes") {
        const { orphan, note } = await previewOrphanHandling(ctx, form);
        return c.html(renderPage(
          <AdminLayout title="Please confirm" path={BASE} email={c.var.operator.email} csrf={c.var.csrf}>
            <ConfirmStep
              question={handleOrphanQuestion(orphan, note)}
              button="Mark handled"
              // Takes no money anywhere and switches nothing off: the provider's retries of the news stop.
              destructive={false}
              fields={{ accountId: orphan.accountId, ref: orphan.ref, note }}
              action={`${BASE}/handle`}
              csrf={c.var.csrf}
              cancel={BASE}
            />
          </AdminLayout>,
        ));
      }
      await markOrphanHandled(ctx, form, { actor: c.var.operator.email });
      return c.redirect(`${BASE}?done=handled`, 303);
    }, (note) => listPage(c, note, which));
  });
  return app;
}
