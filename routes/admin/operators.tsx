import { type Context, Hono } from "hono";
import type { AppContext } from "../../lib/context.ts";
import {
  disableOperator,
  enableOperator,
  listOperatorSummaries,
  type OperatorSummary,
  previewOperatorDisable,
} from "../../lib/auth/operators.ts";
import { ID_PATTERNS } from "../../lib/ids.ts";
import { ValidationError } from "../../lib/errors.ts";
import { renderPage } from "../../components/html.tsx";
import {
  AdminLayout,
  ConfirmStep,
  CsrfField,
  DestructiveButton,
  Flash,
  formatTime,
} from "../../components/admin_layout.tsx";
import { type ConsoleEnv, redirectWithReveal, takeReveal } from "./_session.ts";
import { type PageNote, pageNoteStatus, refusalShownOnPage } from "../_page_note.ts";

const OPERATOR = `/:id{${ID_PATTERNS.operator}}` as const;
const BASE = "/admin/operators";

/**
 * Operators: who can sign in to the console, disabled (asked first) or enabled again. Creating one stays on the
 * command line, where its one-time password is printed.
 */
export function operatorRoutes(ctx: AppContext) {
  const app = new Hono<ConsoleEnv>();

  const list = async (c: Context<ConsoleEnv>, note?: PageNote) =>
    c.html(
      renderPage(
        <AdminLayout title="Operators" path={BASE} email={c.var.operator.email} csrf={c.var.csrf}>
          {note && <Flash kind={note.kind}>{note.text}</Flash>}
          <p class="muted">
            Everyone here can do everything in the console (there are no roles), so any operator may disable another.
            Disabled, their password no longer signs in, and their sessions and API tokens stop working at once; their
            record stays, for the audit log. New operators are created on the command line:{" "}
            <code>deno task operator create EMAIL</code>.
          </p>
          <OperatorTable
            operators={await listOperatorSummaries(ctx)}
            you={c.var.operator.id}
            csrf={c.var.csrf}
          />
        </AdminLayout>,
      ),
      pageNoteStatus(note, c.req.method),
    );

  app.get("/", (c) => {
    const flash = takeReveal(c)?.flash;
    return list(c, flash ? { kind: "ok", text: flash } : undefined);
  });

  app.post(`${OPERATOR}/status` as const, (c) =>
    // Refused (their own account, the last active operator): said above the list, as it is now.
    refusalShownOnPage("Not disabled", async () => {
      const id = c.req.param("id");
      const status = c.var.form.status;
      // Each change is asked for by name: a post naming neither (a mistyped tool, a form missing its field) changes
      // nothing rather than disabling.
      if (status !== "active" && status !== "disabled") {
        throw new ValidationError("The form is invalid.", { status: 'must be "active" or "disabled"' });
      }
      if (status === "active") {
        const { operator, changed } = await enableOperator(ctx, id, { actor: c.var.operator.email });
        return redirectWithReveal(c, {
          path: BASE,
          flash: changed
            ? `${operator.email} is enabled: their password signs in again (their old sessions and tokens stay ended).`
            : `${operator.email} was active already.`,
        });
      }
      if (c.var.form.confirm !== "yes") {
        // Without the page's script the question comes as a page of its own; a refusal comes before it.
        const { operator, activeTokens } = await previewOperatorDisable(ctx, id, { by: c.var.operator });
        if (!operator.disabledAt) {
          return c.html(renderPage(
            <AdminLayout title="Please confirm" path={BASE} email={c.var.operator.email} csrf={c.var.csrf}>
              <ConfirmStep
                question={disableQuestion(operator.email, activeTokens)}
                action={c.req.path}
                fields={{ status: "disabled" }}
                button="Disable operator"
                destructive
                csrf={c.var.csrf}
                cancel={BASE}
              />
            </AdminLayout>,
          ));
        }
      }
      const { operator, revokedTokenIds, changed } = await disableOperator(ctx, id, {
        actor: c.var.operator.email,
        by: c.var.operator,
      });
      return redirectWithReveal(c, {
        path: BASE,
        flash: changed
          ? `${operator.email} is disabled: their password no longer signs in, their sessions have ended` +
            (revokedTokenIds.length ? ` and ${tokenCount(revokedTokenIds.length)} revoked.` : ".")
          : `${operator.email} was disabled already.`,
      });
    }, (note) => list(c, note)));

  return app;
}

/** The question asked before disabling, by the page's script or on a page of its own. */
function disableQuestion(email: string, activeTokens: number): string {
  return `Disable ${email}? Their password stops signing in and their sessions end at once` +
    (activeTokens ? `; ${tokenCount(activeTokens)} revoked.` : ".");
}

function tokenCount(n: number): string {
  return n === 1 ? "their API token is" : `their ${n} API tokens are`;
}

function OperatorTable(props: { operators: OperatorSummary[]; you: string; csrf: string }) {
  return (
    <div class="table-wrap">
      {/* On a phone, a card per operator with its labels, as the console's other lists. */}
      <table class="stack-phone">
        <thead>
          <tr>
            <th>Email</th>
            <th>Created</th>
            <th>Last sign-in</th>
            <th>Status</th>
            <th>API tokens</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          {props.operators.map(({ operator: o, lastSignInAt, activeTokens }) => (
            <tr key={o.id}>
              {/* One block per cell: stacked on a phone, a second child would fall into the label's column. */}
              <td data-label="Email">
                <div>{o.id === props.you ? `${o.email} (you)` : o.email}</div>
              </td>
              <td data-label="Created">{formatTime(o.createdAt)}</td>
              <td data-label="Last sign-in">{formatTime(lastSignInAt)}</td>
              <td data-label="Status">
                <div>
                  <span class={o.disabledAt ? "bad" : "ok"}>
                    {o.disabledAt ? `disabled ${formatTime(o.disabledAt)}` : "active"}
                  </span>
                  {!o.disabledAt && o.mustChangePassword && (
                    <div class="muted small">
                      has not chosen a password yet
                    </div>
                  )}
                </div>
              </td>
              <td data-label="API tokens">{activeTokens ? `${activeTokens} active` : "none"}</td>
              <td class="row-actions">
                {o.id !== props.you && (
                  <form
                    method="post"
                    action={`${BASE}/${o.id}/status`}
                    class="inline"
                    data-confirm={o.disabledAt ? undefined : disableQuestion(o.email, activeTokens)}
                  >
                    <CsrfField token={props.csrf} />
                    <input type="hidden" name="status" value={o.disabledAt ? "active" : "disabled"} />
                    {o.disabledAt
                      ? <button type="submit" class="secondary small">Enable</button>
                      : <DestructiveButton small>Disable</DestructiveButton>}
                  </form>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
