// enhance-edge page: sends each image to POST /api/upscale, one at a time, and shows the result.
"use strict";

(() => {
  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

  const ui = {
    model: $("#model"),
    precision: $("#precision"),
    strengthField: $("#strength-field"),
    strengthAuto: $("#strength-auto"),
    strength: $("#strength"),
    strengthValue: $("#strength-value"),
    strengthExplain: $("#strength-explain"),
    precisionExplain: $("#precision-explain"),
    titleScale: $("#title-scale"),
    facts: $("#model-facts"),
    banner: $("#banner"),
    dropzone: $("#dropzone"),
    input: $("#file-input"),
    limits: $("#limits"),
    results: $("#results"),
    cards: $("#cards"),
    count: $("#result-count"),
    clearAll: $("#clear-all"),
    version: $("#version"),
    template: $("#card-template"),
  };

  let catalog = null; // the answer of GET /api/models
  let precision = null;
  const items = []; // one per card, in the order added
  const waiting = []; // items not sent yet; the page sends one at a time like the server runs them
  let sending = false;

  const MAX_BUSY_RETRIES = 30;
  // Plain words beside each precision's technical name.
  const PRECISION_WORDS = { int8: "faster", fp32: "most exact" };

  // Sizes are counted in units of 1024 bytes, so they are named KiB and MiB.
  function formatBytes(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  }

  function formatSeconds(seconds) {
    return seconds < 10 ? `${seconds.toFixed(2)} s` : `${seconds.toFixed(1)} s`;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function showBanner(text) {
    ui.banner.textContent = text;
    ui.banner.hidden = !text;
  }

  // ---- models and precision --------------------------------------------------------------

  async function loadCatalog() {
    try {
      const response = await fetch("/api/models");
      const body = await response.json();
      if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
      catalog = body;
    } catch (error) {
      showBanner(`Cannot load the models from the enhance-edge server: ${error.message}`);
      return;
    }
    ui.version.textContent = catalog.version;
    ui.model.replaceChildren(...catalog.models.map((model) => {
      const selected = model.name === catalog.default_model;
      return new Option(`${model.name} (×${model.scale})`, model.name, selected, selected);
    }));
    ui.model.disabled = false;
    showModel();
    const { max_upload_bytes: maxBytes, max_pixels: maxPixels } = catalog.limits;
    ui.limits.textContent = `PNG, JPEG, WebP, BMP, TIFF… up to ${formatBytes(maxBytes)} and `
      + `${(maxPixels / 1e6).toLocaleString()} megapixels each · you can also paste an image`;
  }

  function currentModel() {
    return catalog && catalog.models.find((model) => model.name === ui.model.value);
  }

  function showModel() {
    const model = currentModel();
    if (!model) return;
    if (!model.precisions.includes(precision)) precision = model.default_precision;
    ui.precision.replaceChildren(...model.precisions.map((name) => {
      const button = document.createElement("button");
      button.type = "button";
      button.setAttribute("role", "radio");
      button.setAttribute("aria-checked", String(name === precision));
      const words = name === "auto"
        ? `${model.auto_precision} here`
        : PRECISION_WORDS[name];
      button.textContent = words ? `${name} · ${words}` : name;
      button.addEventListener("click", () => { precision = name; showModel(); });
      return button;
    }));
    // The figures of the file this choice runs, as `enhance-edge models` lists them.
    const runs = precision === "auto" ? model.auto_precision : precision;
    const file = (model.files || {})[runs] || {};
    const facts = [`×${model.scale} upscaling`];
    if (typeof file.test_psnr === "number") facts.push(`test PSNR ${file.test_psnr.toFixed(2)} dB (${runs})`);
    if (typeof file.file_bytes === "number") facts.push(`model file ${formatBytes(file.file_bytes)}`);
    ui.facts.textContent = facts.join(" · ");
    ui.titleScale.textContent = ` ×${model.scale}`;
    // Only the precisions installed are explained: without an int8 file there is no int8 to choose.
    ui.precisionExplain.textContent = model.precisions.includes("int8")
      ? "int8 = faster, fp32 = most exact; auto picks int8 where this computer runs it exactly and faster."
      : "fp32, the one installed for this model (auto runs it).";
    ui.strengthField.hidden = !model.conditioned;
    ui.strengthExplain.hidden = !model.conditioned;
  }

  function showStrength() {
    ui.strength.disabled = ui.strengthAuto.checked;
    ui.strengthValue.textContent = ui.strengthAuto.checked ? "auto" : Number(ui.strength.value).toFixed(2);
  }

  // What the form's strength field says: auto, a number from 0 to 1, or nothing for a model without it.
  function chosenStrength() {
    const model = currentModel();
    if (!model || !model.conditioned) return null;
    return ui.strengthAuto.checked ? "auto" : ui.strength.value;
  }

  ui.model.addEventListener("change", showModel);
  ui.strengthAuto.addEventListener("change", showStrength);
  ui.strength.addEventListener("input", showStrength);

  // ---- adding images ----------------------------------------------------------------------

  function addFiles(fileList) {
    const files = [...fileList];
    for (const file of files) {
      const item = createItem(file);
      items.push(item);
      waiting.push(item);
    }
    if (files.length) {
      updateCount();
      sendWaiting();
    }
  }

  ui.input.addEventListener("change", () => {
    addFiles(ui.input.files);
    ui.input.value = ""; // choosing the same file again must fire "change" again
  });

  // Dropping anywhere on the page adds the images instead of navigating to them.
  document.addEventListener("dragover", (event) => {
    event.preventDefault();
    ui.dropzone.classList.add("dragging");
  });
  document.addEventListener("dragleave", (event) => {
    if (!event.relatedTarget) ui.dropzone.classList.remove("dragging");
  });
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    ui.dropzone.classList.remove("dragging");
    addFiles(event.dataTransfer.files);
  });
  document.addEventListener("paste", (event) => {
    const files = [...event.clipboardData.files];
    if (files.length) addFiles(files);
  });

  ui.clearAll.addEventListener("click", () => [...items].forEach(removeItem));

  function updateCount() {
    ui.results.hidden = items.length === 0;
    ui.count.textContent = items.length ? `(${items.length})` : "";
  }

  // ---- one card per image -----------------------------------------------------------------

  function createItem(file) {
    const card = ui.template.content.firstElementChild.cloneNode(true);
    const item = {
      file,
      card,
      model: catalog ? ui.model.value : null,
      precision,
      strength: chosenStrength(),
      job: null,
      request: null,
      timer: null,
      poller: null,
      removed: false,
      originalUrl: URL.createObjectURL(file),
      resultUrl: null,
      mode: "slider",
      zoom: "fit",
      split: 50,
    };
    const name = file.name || "pasted image";
    $(".file-name", card).textContent = name;
    $(".file-name", card).title = name;
    $(".file-meta", card).textContent = formatBytes(file.size);
    const thumb = $(".thumb img", card);
    thumb.addEventListener("error", () => { thumb.hidden = true; });
    thumb.src = item.originalUrl;
    $(".remove", card).addEventListener("click", () => removeItem(item));
    for (const button of $$(".view-mode button", card)) {
      button.addEventListener("click", () => { item.mode = button.dataset.mode; layout(item); });
    }
    for (const button of $$(".zoom button", card)) {
      button.addEventListener("click", () => { item.zoom = button.dataset.zoom; layout(item); });
    }
    wireSlider(item);
    wireSideScroll(item);
    setStatus(item, "waiting", "Queued");
    ui.cards.append(card);
    return item;
  }

  function removeItem(item) {
    item.removed = true;
    if (item.request) item.request.abort();
    stopWatching(item);
    URL.revokeObjectURL(item.originalUrl);
    if (item.resultUrl) URL.revokeObjectURL(item.resultUrl);
    item.card.remove();
    items.splice(items.indexOf(item), 1);
    updateCount();
  }

  function setStatus(item, state, text) {
    item.card.dataset.state = state;
    $(".status-text", item.card).textContent = text;
  }

  function setProgress(item, fraction) {
    const bar = $(".progress", item.card);
    bar.hidden = fraction === null;
    bar.classList.toggle("indeterminate", fraction === undefined);
    $(".progress-bar", bar).style.width = fraction === undefined ? "" : `${Math.round((fraction || 0) * 100)}%`;
  }

  // ---- talking to the server --------------------------------------------------------------

  async function sendWaiting() {
    if (sending) return;
    sending = true;
    while (waiting.length) {
      const item = waiting.shift();
      if (!item.removed) await upscaleItem(item);
    }
    sending = false;
  }

  function post(item) {
    return new Promise((resolve) => {
      const request = new XMLHttpRequest();
      item.request = request;
      request.open("POST", "/api/upscale");
      request.responseType = "blob";
      request.upload.addEventListener("progress", (event) => {
        if (!event.lengthComputable) return;
        setProgress(item, event.loaded / event.total);
        setStatus(item, "working", `Uploading ${Math.round((event.loaded / event.total) * 100)}%`);
      });
      request.upload.addEventListener("load", () => startUpscaleClock(item));
      request.addEventListener("load", () => resolve(request));
      request.addEventListener("error", () => resolve(null));
      request.addEventListener("abort", () => resolve(null));
      item.job = newJobId();
      const form = new FormData();
      form.append("image", item.file, item.file.name || "pasted.png");
      form.append("job", item.job);
      if (item.model) form.append("model", item.model);
      if (item.precision) form.append("precision", item.precision);
      if (item.strength !== null) form.append("strength", item.strength);
      setStatus(item, "working", "Uploading…");
      setProgress(item, 0);
      request.send(form);
    });
  }

  function newJobId() {
    // crypto.randomUUID exists only in secure contexts; a server on the network is plain http.
    return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  // Once the upload is sent: an elapsed clock, and the server's own progress for this job
  // (its place in the line, then the share of pixels the model has done).
  function startUpscaleClock(item) {
    const start = performance.now();
    let latest = null;
    stopWatching(item);
    setProgress(item, undefined);
    const tick = () => {
      const elapsed = formatSeconds((performance.now() - start) / 1000);
      if (latest && latest.state === "waiting" && latest.ahead > 0) {
        setStatus(item, "working", `Waiting for the model · ${latest.ahead} ahead`);
      } else if (latest && latest.state === "running" && latest.fraction > 0) {
        setProgress(item, latest.fraction);
        setStatus(item, "working", `Upscaling ${Math.round(latest.fraction * 100)}% · ${elapsed}`);
      } else {
        setStatus(item, "working", `Upscaling… ${elapsed}`);
      }
    };
    const poll = async () => {
      try {
        const response = await fetch(`/api/progress/${item.job}`);
        if (response.ok) latest = await response.json();
      } catch {
        // the upscale request itself reports a server that went away
      }
      if (item.timer !== null) item.poller = setTimeout(poll, 400);
    };
    tick();
    item.timer = setInterval(tick, 100);
    item.poller = setTimeout(poll, 200);
  }

  function stopWatching(item) {
    clearInterval(item.timer);
    clearTimeout(item.poller);
    item.timer = null;
    item.poller = null;
  }

  async function errorMessage(request) {
    try {
      return JSON.parse(await request.response.text()).error || `HTTP ${request.status}`;
    } catch {
      return `the server answered HTTP ${request.status}`;
    }
  }

  async function upscaleItem(item) {
    for (let attempt = 0; ; attempt++) {
      const started = performance.now();
      const request = await post(item);
      stopWatching(item);
      item.request = null;
      if (item.removed) return;
      if (request === null) {
        return fail(item, "the server did not answer; is `enhance-edge serve` still running?");
      }
      if (request.status === 503 && attempt < MAX_BUSY_RETRIES) {
        const seconds = Number(request.getResponseHeader("retry-after")) || 2;
        setStatus(item, "working", "Server busy, waiting for a turn…");
        setProgress(item, undefined);
        await sleep(seconds * 1000);
        if (item.removed) return;
        continue;
      }
      if (request.status !== 200) return fail(item, await errorMessage(request));
      return finish(item, request, (performance.now() - started) / 1000);
    }
  }

  function fail(item, message) {
    setProgress(item, null);
    setStatus(item, "failed", "Failed");
    const line = $(".error-line", item.card);
    line.textContent = message;
    line.hidden = false;
  }

  function downloadName(request, item) {
    const header = request.getResponseHeader("content-disposition") || "";
    const encoded = /filename\*=UTF-8''([^;]+)/i.exec(header);
    if (encoded) return decodeURIComponent(encoded[1]);
    const plain = /filename="([^"]+)"/i.exec(header);
    return plain ? plain[1] : `upscaled-${item.file.name || "image.png"}`;
  }

  function serverSeconds(request, metric) {
    const match = new RegExp(`${metric};dur=([\\d.]+)`).exec(request.getResponseHeader("server-timing") || "");
    return match ? Number(match[1]) / 1000 : null;
  }

  async function finish(item, request, roundTrip) {
    const card = item.card;
    const blob = request.response;
    item.resultUrl = URL.createObjectURL(blob);
    const filename = downloadName(request, item);
    const download = $(".download", card);
    download.href = item.resultUrl;
    download.download = filename;
    download.title = `Save ${filename} (its metadata says it was upscaled by enhance-edge)`;
    download.hidden = false;

    const upscaleSeconds = serverSeconds(request, "upscale") ?? roundTrip;
    const queueSeconds = serverSeconds(request, "queue") || 0;
    setProgress(item, null);
    setStatus(item, "done", `Done in ${formatSeconds(upscaleSeconds)}`);
    $(".card-status", card).title = `upscaling ${formatSeconds(upscaleSeconds)}, waiting for the model `
      + `${formatSeconds(queueSeconds)}, round trip ${formatSeconds(roundTrip)}`;

    const inputSize = request.getResponseHeader("x-enhance-edge-input-size") || "?";
    const outputSize = request.getResponseHeader("x-enhance-edge-output-size") || "?";
    const model = request.getResponseHeader("x-enhance-edge-model");
    const usedPrecision = request.getResponseHeader("x-enhance-edge-precision");
    const usedStrength = request.getResponseHeader("x-enhance-edge-strength");
    $(".file-meta", card).textContent = [`${inputSize.replace("x", "×")} → ${outputSize.replace("x", "×")} px`,
      `${model} · ${usedPrecision}${usedStrength ? ` · strength ${usedStrength}` : ""}`,
      formatBytes(blob.size)].join("  ·  ");
    $(".before-caption", card).textContent = `Original · ${inputSize.replace("x", "×")}`;
    $(".after-caption", card).textContent = `Upscaled · ${outputSize.replace("x", "×")}`;

    for (const image of $$("img.before", card)) image.src = item.originalUrl;
    for (const image of $$("img.after", card)) image.src = item.resultUrl;
    const viewer = $(".viewer", card);
    viewer.hidden = false;
    const shown = $(".slider-stage img.after", card);
    try {
      await shown.decode();
    } catch {
      $$(".stage, .split, .viewer-toolbar", card).forEach((element) => { element.hidden = true; });
      const note = $(".viewer-note", card);
      note.textContent = "This browser cannot display this image format; Download has the full result.";
      note.hidden = false;
      return;
    }
    layout(item);
  }

  // ---- the viewer: before/after slider, side by side, pixel zoom -----------------------------

  function layout(item) {
    const card = item.card;
    const after = $(".slider-stage img.after", card);
    const before = $(".slider-stage img.before", card);
    const width = after.naturalWidth;
    const height = after.naturalHeight;
    if (!width || !height) return;

    const side = item.mode === "side";
    const sliderStage = $(".slider-stage", card);
    const sideStage = $(".side-stage", card);
    sliderStage.hidden = side;
    $(".split", card).hidden = side;
    sideStage.hidden = !side;
    for (const button of $$(".view-mode button", card)) {
      button.setAttribute("aria-pressed", String(button.dataset.mode === item.mode));
    }
    for (const button of $$(".zoom button", card)) {
      button.setAttribute("aria-pressed", String(button.dataset.zoom === item.zoom));
    }

    let scale = Number(item.zoom);
    if (item.zoom === "fit") {
      const stage = side ? sideStage : sliderStage;
      const room = stage.clientWidth - 32;
      const roomWidth = side ? (room - 16) / 2 : room;
      const roomHeight = Math.min(window.innerHeight * (side ? 0.6 : 0.66), side ? 520 : 600);
      scale = Math.max(0.05, Math.min(roomWidth / width, roomHeight / height, 16));
    }
    const shownWidth = `${Math.round(width * scale)}px`;
    const shownHeight = `${Math.round(height * scale)}px`;
    const compare = $(".compare", card);
    compare.style.width = shownWidth;
    compare.style.height = shownHeight;
    for (const image of $$(".pane img", card)) {
      image.style.width = shownWidth;
      image.style.height = shownHeight;
    }
    // Show real pixels (no smoothing) whenever an image is enlarged: that is the pixel zoom.
    const beforeScale = scale * (width / (before.naturalWidth || width));
    $$("img.after", card).forEach((image) => image.classList.toggle("pixelated", scale >= 1));
    $$("img.before", card).forEach((image) => image.classList.toggle("pixelated", beforeScale >= 1));
    const fit = $('.zoom button[data-zoom="fit"]', card);
    fit.textContent = item.zoom === "fit" ? `Fit · ${Math.round(scale * 100)}%` : "Fit";
  }

  window.addEventListener("resize", () => items.forEach((item) => item.resultUrl && layout(item)));

  function wireSlider(item) {
    const compare = $(".compare", item.card);
    const range = $(".split", item.card);
    const setSplit = (percent) => {
      item.split = Math.min(100, Math.max(0, percent));
      compare.style.setProperty("--split", `${item.split}%`);
      range.value = String(item.split);
    };
    const fromPointer = (event) => {
      const box = compare.getBoundingClientRect();
      setSplit(((event.clientX - box.left) / box.width) * 100);
    };
    compare.addEventListener("pointerdown", (event) => {
      compare.setPointerCapture(event.pointerId);
      fromPointer(event);
    });
    compare.addEventListener("pointermove", (event) => {
      if (compare.hasPointerCapture(event.pointerId)) fromPointer(event);
    });
    range.addEventListener("input", () => setSplit(Number(range.value)));
    setSplit(item.split);
  }

  function wireSideScroll(item) {
    // Both panes show the same area, so the scroll offsets match pixel for pixel.
    const panes = $$(".pane", item.card);
    panes.forEach((pane, index) => {
      pane.addEventListener("scroll", () => {
        const other = panes[1 - index];
        if (other.scrollLeft !== pane.scrollLeft) other.scrollLeft = pane.scrollLeft;
        if (other.scrollTop !== pane.scrollTop) other.scrollTop = pane.scrollTop;
      });
    });
  }

  showStrength();
  loadCatalog();
})();
