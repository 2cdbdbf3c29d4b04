// The Export buttons: the files are fetched and saved, so the page can say when corrupt annotation
// files were left out of them (the server counts them in the X-Clicksam-Skipped header).
import { api } from "./api.js";
import { message } from "./state.js";

/** Download an export, saying when corrupt annotation files were left out of it. */
async function exportFile(event) {
  event.preventDefault();
  const link = event.currentTarget;
  try {
    const { blob, skipped } = await api.exportFile(link.getAttribute("href"));
    const save = document.createElement("a");
    save.href = URL.createObjectURL(blob);
    save.download = link.getAttribute("download");
    save.click();
    setTimeout(() => URL.revokeObjectURL(save.href), 60000);
    message(skipped ? `exported; ${skipped} corrupt annotation file(s) left out (listed in the export's ` +
      "warnings and the server log)" : `exported ${save.download}`, skipped > 0);
  } catch (err) {
    message(`export failed: ${err.message}`, true);
  }
}

/** Make the links of #export download through exportFile. */
export function wireExports() {
  for (const link of document.querySelectorAll("#export a")) link.addEventListener("click", exportFile);
}
