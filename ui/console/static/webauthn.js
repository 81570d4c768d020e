// FirewallIQ Secure console: security keys (WebAuthn). A form with
// data-webauthn="create" or "get" carries the options the appliance made
// (data-options: {"publicKey": {...}} with binary members base64url). Its
// .webauthn-go button hands them to navigator.credentials, puts the
// answer (the PublicKeyCredential as JSON, binary members base64url) in
// the form's hidden *credential field and submits the form; the server
// verifies everything. Loaded from 'self' (the CSP forbids inline script).
"use strict";
(function () {
  function fromB64url(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) { s += "="; }
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out.buffer;
  }

  function toB64url(buf) {
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) { bin += String.fromCharCode(bytes[i]); }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function decodeList(list) {
    return (list || []).map(function (c) {
      var d = { type: c.type, id: fromB64url(c.id) };
      if (c.transports) { d.transports = c.transports; }
      return d;
    });
  }

  // options turns the appliance's JSON into what navigator.credentials takes.
  function options(kind, o) {
    var pk = o.publicKey;
    pk.challenge = fromB64url(pk.challenge);
    if (kind === "create") {
      pk.user.id = fromB64url(pk.user.id);
      pk.excludeCredentials = decodeList(pk.excludeCredentials);
    } else {
      pk.allowCredentials = decodeList(pk.allowCredentials);
    }
    return { publicKey: pk };
  }

  // answer is the PublicKeyCredential as JSON for the appliance.
  function answer(cred) {
    var r = cred.response, out = {
      id: cred.id, rawId: toB64url(cred.rawId), type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: toB64url(r.clientDataJSON) }
    };
    if (r.attestationObject) {
      out.response.attestationObject = toB64url(r.attestationObject);
      if (r.getTransports) { out.response.transports = r.getTransports(); }
    } else {
      out.response.authenticatorData = toB64url(r.authenticatorData);
      out.response.signature = toB64url(r.signature);
      if (r.userHandle && r.userHandle.byteLength) { out.response.userHandle = toB64url(r.userHandle); }
    }
    return out;
  }

  function start(form, button) {
    var status = form.querySelector(".webauthn-status");
    var say = function (t) { if (status) { status.textContent = t; } };
    if (!window.PublicKeyCredential || !navigator.credentials) {
      say("This browser cannot use security keys here (they need HTTPS and a current browser).");
      return;
    }
    var kind = form.dataset.webauthn, opts;
    try {
      opts = options(kind, JSON.parse(form.dataset.options));
    } catch (e) {
      say("The security key request could not be read; reload the page.");
      return;
    }
    button.disabled = true;
    say("Touch your security key now.");
    var call = kind === "create" ? navigator.credentials.create(opts) : navigator.credentials.get(opts);
    call.then(function (cred) {
      form.querySelector("input[name$='credential']").value = JSON.stringify(answer(cred));
      say("Checking…");
      form.submit();
    }, function (e) {
      button.disabled = false;
      say("The security key did not answer (" + (e && e.name ? e.name : "error") + "); try again.");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-webauthn]").forEach(function (form) {
      var button = form.querySelector("button.webauthn-go");
      if (button) {
        button.addEventListener("click", function () { start(form, button); });
        // Marks the prompt usable (tests wait for it before clicking).
        form.dataset.ready = "1";
      }
    });
  });
})();
