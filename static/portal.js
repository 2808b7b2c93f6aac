// Model Router portal: small conveniences on top of pages that work without script.
document.addEventListener("DOMContentLoaded", () => {
  // Copy buttons: data-copy names the element whose text is copied.
  document.querySelectorAll("button[data-copy]").forEach((button) => {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      try {
        await navigator.clipboard.writeText(source.textContent);
        button.textContent = "Copied";
      } catch (_) {
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        button.textContent = "Selected — press Ctrl+C";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 2000);
    });
  });

  // Forms that ask before they act (revoking a key).
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });

  // Scope pickers: show the model list or the model select only when that scope is chosen.
  document.querySelectorAll("fieldset.scope").forEach((fieldset) => {
    const sync = () => {
      const chosen = fieldset.querySelector("input[name=scope]:checked");
      fieldset.querySelectorAll(".scope-detail").forEach((detail) => {
        detail.hidden = !chosen || chosen.value !== detail.dataset.scope;
      });
    };
    fieldset.addEventListener("change", sync);
    sync();
  });
});

// An order page polls its order while it is pending and shows the outcome when it changes.
document.addEventListener("DOMContentLoaded", () => {
  const card = document.querySelector("[data-order-poll]");
  const state = document.getElementById("order-state");
  if (!card || !state || state.textContent.trim() !== "pending") return;
  const id = card.dataset.orderPoll;
  const poll = async () => {
    try {
      const response = await fetch(`/api/portal/recharge/orders/${encodeURIComponent(id)}`, { credentials: "same-origin" });
      if (response.ok) {
        const { order } = await response.json();
        if (order.state !== "pending") {
          state.textContent = order.state;
          state.className = `pill ${order.state === "paid" ? "ok" : "bad"}`;
          document.getElementById("order-paid").hidden = order.state !== "paid";
          document.getElementById("order-failed").hidden = order.state === "paid";
          for (const gone of ["order-waiting", "pay-link"]) document.getElementById(gone)?.remove();
          return;
        }
      }
    } catch (_) { /* offline for a moment: try again */ }
    setTimeout(poll, 2000);
  };
  setTimeout(poll, 2000);
});

// Print buttons.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("button[data-print]").forEach((button) => {
    button.addEventListener("click", () => window.print());
  });
});
