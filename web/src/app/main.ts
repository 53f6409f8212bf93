// The web app's shell: header, connection indicator and the hash router between the views.
import { type LinkState, watchLink } from "./api";
import { renderBoard } from "./board";
import { h } from "./dom";
import { renderOrder } from "./order";
import { boardHref, parseRoute } from "./routes";
import { setToken, who } from "./session";
import "./styles.css";

const LINK_LABELS: Record<LinkState, string> = { connecting: "Connecting", live: "Live", offline: "Reconnecting" };

function header(): HTMLElement {
  const link = h("span", { class: "link-state", role: "status" });
  watchLink((state) => {
    link.dataset.state = state;
    link.textContent = LINK_LABELS[state];
  });
  return h(
    "header",
    { class: "topbar" },
    h(
      "a",
      { class: "brand", href: boardHref({}) },
      h("span", { class: "brand-mark", "aria-hidden": "true" }),
      "ordergraph",
    ),
    h("nav", { class: "nav" }, h("a", { href: boardHref({}) }, "Orders"), h("a", { href: "/graphql" }, "GraphiQL")),
    identity(),
    link,
  );
}

/** Who you are (from the token), and a button to paste another token. */
function identity(): HTMLElement {
  const current = who();
  const button = h("button", { class: "who-change", type: "button" }, current ? "Change token" : "Sign in");
  button.addEventListener("click", () => {
    const pasted = window.prompt("Paste a bearer token (empty: sign out)", "");
    if (pasted === null) return;
    setToken(pasted);
    window.location.reload();
  });
  return h(
    "span",
    { class: "who", "data-role": current?.role ?? "none" },
    h("span", { class: "who-label" }, current ? current.label : "no token"),
    button,
  );
}

const view = h("main", { class: "view" });
document.getElementById("app")!.replaceChildren(header(), view);

let stop = (): void => undefined;

function route(): void {
  stop();
  const current = parseRoute(window.location.hash);
  if (current.view === "order") {
    document.title = `Order ${current.orderId.slice(0, 8)} · ordergraph`;
    stop = renderOrder(view, current.orderId, current.version);
  } else {
    document.title = "Orders · ordergraph";
    stop = renderBoard(view, current.filter);
  }
  window.scrollTo(0, 0);
}

window.addEventListener("hashchange", route);
route();
