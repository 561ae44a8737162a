// Demo Beauty's storefront script: everything a shopper clicks goes through fetch and updates
// the page in place, like the single-page shops Cartwright automates.
"use strict";

async function call(method, url, body) {
  const response = await fetch(url, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  let data = {};
  try { data = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) {
    const error = new Error(data.error || `Something went wrong (${response.status})`);
    error.status = response.status;
    throw error;
  }
  return data;
}

function toast(text) {
  const t = document.querySelector('[role="status"]');
  if (!t) return;
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
}

async function refreshBag() {
  const bag = document.getElementById("bag");
  if (!bag) return;
  const response = await fetch(bag.dataset.fragment, { credentials: "same-origin" });
  bag.innerHTML = await response.text();
}

function openSlider(name) {
  const wrapper = document.querySelector(`div[data-slider="${name}"]`);
  if (!wrapper) return;
  wrapper.hidden = false;
  // Read a layout value so the browser applies the unhidden state, then slide in.
  void wrapper.offsetWidth;
  wrapper.classList.add("open");
}

function closeSliders() {
  for (const wrapper of document.querySelectorAll("div[data-slider]")) {
    wrapper.classList.remove("open");
    setTimeout(() => { wrapper.hidden = true; }, 250);
  }
}

function selectedAddress() {
  const checked = document.querySelector('input[name="address_id"]:checked');
  return checked ? Number(checked.value) : null;
}

const checkout = { payment: null, addressKind: "Home" };

function checkoutError(text) {
  const e = document.querySelector("[data-checkout-error]");
  if (!e) return;
  e.textContent = text || "";
  e.hidden = !text;
}

async function lookupPincode(input) {
  const form = input.closest("form");
  form.elements.city.value = "";
  form.elements.state.value = "";
  if (!/^\d{6}$/.test(input.value)) return;
  try {
    const place = await call("GET", `/api/pincode/${input.value}`);
    if (input.value === place.pincode) {
      form.elements.city.value = place.city;
      form.elements.state.value = place.state;
    }
  } catch (e) {
    checkoutError(e.message);
  }
}

const actions = {
  async "add-to-bag"(b) {
    b.disabled = true;
    try {
      await call("POST", "/api/cart/items", { slug: b.dataset.slug });
      toast("Added to bag");
    } catch (e) {
      toast(e.message);
    } finally {
      b.disabled = false;
    }
  },
  async "qty-dec"(b) { await call("POST", `/api/cart/lines/${b.dataset.product}/decrease`); await refreshBag(); },
  async "qty-inc"(b) {
    try { await call("POST", `/api/cart/lines/${b.dataset.product}/increase`); } catch (e) { toast(e.message); }
    await refreshBag();
  },
  async "remove-line"(b) { await call("DELETE", `/api/cart/lines/${b.dataset.product}`); await refreshBag(); },
  "open-slider"(b) { openSlider(b.dataset.opens); },
  "close-slider"() { closeSliders(); },
  async "apply-coupon"(b) {
    try {
      await call("POST", "/api/cart/coupon", { code: b.dataset.code });
      toast(`${b.dataset.code} applied`);
      await refreshBag();
    } catch (e) {
      toast(e.message);
    }
  },
  async "remove-coupon"() { await call("DELETE", "/api/cart/coupon"); await refreshBag(); },
  "edit-address"(b) { b.parentElement.querySelector(".actions").hidden = false; },
  "delete-address"(b) {
    const dialog = document.querySelector("[data-confirm]");
    dialog.dataset.id = b.dataset.id;
    dialog.hidden = false;
  },
  "cancel-remove"() { document.querySelector("[data-confirm]").hidden = true; },
  async "confirm-remove"() {
    const dialog = document.querySelector("[data-confirm]");
    await call("DELETE", `/api/addresses/${dialog.dataset.id}`);
    dialog.hidden = true;
    document.querySelector(`[data-address="${dialog.dataset.id}"]`)?.remove();
    toast("Address removed");
  },
  "add-address"() { document.querySelector("[data-address-form]").hidden = false; },
  "address-type"(b) {
    checkout.addressKind = b.dataset.kind;
    for (const other of b.parentElement.querySelectorAll("button")) other.setAttribute("aria-pressed", String(other === b));
  },
  async "save-address"(b) {
    const form = b.closest("form");
    const f = form.elements;
    try {
      const saved = await call("POST", "/api/addresses", {
        full_name: f.name.value, phone: f.phone.value, line1: f.address.value, street: f.area.value,
        landmark: f.landmark.value, pincode: f.pincode.value, city: f.city.value, state: f.state.value,
        kind: checkout.addressKind,
      });
      const list = document.querySelector(".addresses");
      const label = document.createElement("label");
      label.innerHTML = `<input type="radio" name="address_id" value="${saved.id}" checked> <span><strong></strong> (${saved.kind})<br>${saved.city}, ${saved.state} ${saved.pincode}</span>`;
      label.querySelector("strong").textContent = saved.full_name;
      list.appendChild(label);
      form.hidden = true;
      checkoutError("");
      toast("Address saved");
    } catch (e) {
      checkoutError(e.message);
    }
  },
  "review-order"() {
    if (selectedAddress() === null) { checkoutError("Please add a delivery address"); return; }
    checkoutError("");
    document.querySelector('[data-step="review"]').hidden = false;
  },
  "choose-payment"(b) {
    checkout.payment = b.dataset.method;
    for (const option of b.parentElement.querySelectorAll("[data-method]")) option.setAttribute("aria-pressed", String(option === b));
    document.querySelector("[data-payment-choice]").textContent = `Paying with ${b.textContent}`;
  },
  async "buy-now"(b) {
    const address_id = selectedAddress();
    if (address_id === null) { checkoutError("Please add a delivery address"); return; }
    if (!checkout.payment) { checkoutError("Please choose a payment method"); return; }
    b.disabled = true;
    try {
      const order = await call("POST", "/api/orders", { address_id, payment: checkout.payment });
      location.href = `/order-confirmation/${order.number}`;
    } catch (e) {
      checkoutError(e.message);
      b.disabled = false;
    }
  },
};

document.addEventListener("click", async (event) => {
  const target = event.target.closest("[data-action]");
  if (!target || target.disabled) return;
  const action = actions[target.dataset.action];
  if (!action) return;
  event.preventDefault();
  try {
    await action(target);
  } catch (e) {
    toast(e.message);
  }
});

document.addEventListener("input", (event) => {
  if (event.target.id === "pincode") lookupPincode(event.target);
});

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") closeSliders();
});
