// Detail page: copy buttons copy the text of the element they name (already masked text).
(function () {
  "use strict";
  for (const button of document.querySelectorAll("button.copy[data-copy]")) {
    button.addEventListener("click", async function () {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      try {
        await navigator.clipboard.writeText(source.textContent);
        button.textContent = "Copied";
      } catch (err) {
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        button.textContent = "Selected: press Ctrl+C";
      }
      window.setTimeout(function () { button.textContent = "Copy"; }, 1500);
    });
  }
})();
