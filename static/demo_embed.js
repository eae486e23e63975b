// The demo shop's glue for the embedded checkout, as a shop would write it (a file, since our pages allow no
// inline scripts): mount the session its server created and list the events the page hears.
const el = document.getElementById("demo-checkout");
const list = document.getElementById("demo-events");
const checkout = globalThis.AimbrellaPay.checkout({ clientSecret: el.dataset.clientSecret });
for (const name of ["ready", "succeeded", "failed", "expired", "error", "recovered"]) {
  checkout.on(name, ({ sessionId, code }) => {
    const li = document.createElement("li");
    li.textContent = code ? `${name}: ${code} (${sessionId})` : `${name} (${sessionId})`;
    list.append(li);
  });
}
checkout.mount(el);
