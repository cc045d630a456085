// The delete button stays disabled until the JID is typed again. The
// server checks it too; this only saves a round trip.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var input = document.getElementById("delete-jid");
  var button = document.getElementById("delete-submit");
  if (!input || !button) {
    return;
  }
  var want = input.getAttribute("data-jid").toLowerCase();
  var check = function () {
    button.disabled = input.value.trim().toLowerCase() !== want;
  };
  input.addEventListener("input", check);
  check();
});
