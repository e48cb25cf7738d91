// Feature map hover panel, run as the panel's js_on_load (Gradio 6 gr.HTML; `element` is the panel).
// Plotly's hover labels cannot show images, so this listens to plotly_hover (and plotly_click, for touch) on the
// map and shows the point's thumbnail, label and score. customdata is [group, label, score, thumbnail URL, file, score title,
// index]. A lasso or box selection, or a click, also sends the points' indices to the app (`select`); a click opens it.
// Gradio may mount the plot after this panel, or swap its div, so each new one is listened to as soon as it appears.
// Drawing a new map (the Draw button), or the map the shown point came from leaving the page, empties the panel.
const image = element.querySelector(".featuremap-thumb");
const label = element.querySelector(".featuremap-label");
const meta = element.querySelector(".featuremap-meta");
const file = element.querySelector(".featuremap-file");
const hint = label.textContent;
let shownFrom = null;  // the plot whose point the panel shows

function reset() {
  image.hidden = true;
  image.removeAttribute("src");
  image.alt = "";
  label.textContent = hint;
  meta.textContent = "";
  file.textContent = "";
  delete element.dataset.group;
  shownFrom = null;
}

image.addEventListener("error", () => { image.hidden = true; });  // a big map's thumbnails: only for selected points

function show(plot, point) {
  if (!point || !Array.isArray(point.customdata)) return;
  const [group, text, score, url, name, scoreTitle] = point.customdata;
  image.src = url;
  image.alt = `${group} image: ${name}`;
  image.hidden = false;
  label.textContent = text;
  meta.textContent = `${group} · ${scoreTitle} ${Number(score).toFixed(3)}`;
  file.textContent = name;
  element.dataset.group = group;
  shownFrom = plot;
}

// The selected points' indices (customdata[6]) go to the hidden selection box as JSON; its input event makes the
// app answer with their images. A click sends {points: [index], click: time} (the time makes a second click on the
// same point a change too), and the app opens that point's image.
function select(points, click) {
  const box = document.querySelector("#featuremap-selection textarea, #featuremap-selection input");
  if (!box || !Array.isArray(points)) return;
  const indices = points.map((point) => point.customdata && point.customdata[6]).filter(Number.isInteger);
  box.value = JSON.stringify(click ? { points: indices, click: Date.now() } : indices);
  box.dispatchEvent(new Event("input", { bubbles: true }));
}

function listen() {
  if (shownFrom && !shownFrom.isConnected) reset();
  const host = document.getElementById("featuremap-plot");
  if (!host) return;
  for (const plot of host.querySelectorAll(".js-plotly-plot")) {
    if (plot.featuremapListening || typeof plot.on !== "function") continue;
    plot.featuremapListening = true;
    for (const name of ["plotly_hover", "plotly_click"]) {
      plot.on(name, (event) => show(plot, event && event.points && event.points[0]));
    }
    plot.on("plotly_selected", (event) => select(event && event.points));  // lasso or box
    plot.on("plotly_click", (event) => select(event && event.points && event.points.slice(0, 1), true));
  }
}

document.addEventListener("click", (event) => {
  if (event.target instanceof Element && event.target.closest("#featuremap-run")) reset();
}, true);
listen();
new MutationObserver(listen).observe(document.body, { childList: true, subtree: true });  // a cheap look per change
