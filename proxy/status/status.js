// Copy buttons: an enhancement only; without this script the snippets are plain text to select.
document.querySelectorAll("button.copy").forEach(function (b) {
  var pre = document.getElementById(b.dataset.target);
  if (!pre || !navigator.clipboard) { return; }
  b.hidden = false;
  b.addEventListener("click", function () {
    navigator.clipboard.writeText(pre.textContent).then(function () {
      b.textContent = "Copied";
      setTimeout(function () { b.textContent = "Copy"; }, 1500);
    });
  });
});
