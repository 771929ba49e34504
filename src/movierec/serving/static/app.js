// movierec's web page: search, rate, and ask every served model for recommendations. No build step.
// Stored mode (the server stores people: GET /health says "people": true): the page's person lives in
// localStorage, its ratings are written to the server as they are given and read back on the next visit, and
// recommendations come from the stored history. Otherwise the page is stateless (POST /v1/recommendations).
"use strict";

(function () {
  const RATINGS = [5, 4.5, 4, 3.5, 3, 2.5, 2, 1.5, 1, 0.5];
  const SEARCH_LIMIT = 10;
  const K = 10;
  const DEBOUNCE_MS = 250;
  const PERSON_KEY = "movierec.person";  // localStorage: {person_id, token} of this browser's person

  const $ = (sel) => document.querySelector(sel);
  const state = {
    models: [],          // from /v1/models
    rated: [],           // [{movie, rating}] in the order rated
    searchSeq: 0,        // only the latest search's answer is shown
    similarSeq: 0,
    stored: false,       // the server stores people (stored mode)
    person: null,        // {person_id, token} in stored mode, once one exists
    writes: Promise.resolve(),  // the server writes, chained so that they arrive in order
    epoch: 0,            // bumped by "Forget me": writes queued before it are dropped
    restoring: null,     // while the stored ratings load: the ratings given meanwhile, [[movie, rating]]
  };

  // ------------------------------------------------------------------ helpers
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) {
      if (c !== null && c !== undefined) node.append(c);
    }
    return node;
  }

  function setStatus(text, kind, source) {
    const s = $("#status");
    s.dataset.source = source || "";
    s.textContent = text || "";
    s.className = "status" + (kind ? " " + kind : "");
  }

  async function api(path, options) {
    let res;
    try {
      res = await fetch(path, options);
    } catch (e) {
      throw new Error("the server cannot be reached");
    }
    let body = null;
    try {
      body = await res.json();
    } catch (e) {
      body = null;
    }
    if (!res.ok) {
      const detail = body && typeof body.detail === "string" ? body.detail : res.status + " " + res.statusText;
      const err = new Error(detail);
      err.status = res.status;
      throw err;
    }
    return body;
  }

  function stars(r) {
    return "★".repeat(Math.floor(r)) + (r % 1 ? "½" : "");
  }

  // Movie ids are numbers (MovieLens) or strings (own data imported with string ids): compared as text.
  function sameId(a, b) {
    return String(a) === String(b);
  }

  function ratingOf(movieId) {
    const entry = state.rated.find((e) => sameId(e.movie.movie_id, movieId));
    return entry ? entry.rating : null;
  }

  // The title (a button that shows similar movies), year and genres of a movie.
  function movieInfo(movie, model) {
    const title = el("button", {
      type: "button", class: "title-link", text: movie.title,
      "aria-label": "Similar movies to " + movie.title,
      onclick: () => showSimilar(movie, model),
    });
    const meta = el("span", { class: "meta" });
    if (movie.genres && movie.genres.length) {
      meta.append(el("span", { class: "genres", text: movie.genres.join(", ") }));
    }
    if (movie.ratings !== undefined) {
      meta.append(el("span", { class: "popularity", text: movie.ratings.toLocaleString("en") + " ratings" }));
    }
    return el("div", { class: "movie-info" }, title, meta);
  }

  function rateSelect(movie, current, onChange) {
    const select = el("select", { class: "rate", "aria-label": "Your rating of " + movie.title,
                                  "data-movie-id": String(movie.movie_id) });
    select.append(el("option", { value: "", text: current === null ? "Rate…" : "No rating" }));
    for (const r of RATINGS) {
      const opt = el("option", { value: String(r), text: r.toFixed(1) + " " + stars(r) });
      if (current === r) opt.selected = true;
      select.append(opt);
    }
    select.addEventListener("change", () => onChange(select.value === "" ? null : Number(select.value)));
    return select;
  }

  // ------------------------------------------------------------------ search
  let searchTimer = null;

  function onSearchInput() {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(runSearch, DEBOUNCE_MS);
  }

  async function runSearch() {
    const q = $("#search").value.trim();
    const seq = ++state.searchSeq;
    const list = $("#search-results");
    if (q.length < 2) {
      list.replaceChildren();
      list.removeAttribute("aria-busy");
      return;
    }
    list.setAttribute("aria-busy", "true");
    try {
      const movies = await api("/v1/movies?q=" + encodeURIComponent(q) + "&limit=" + SEARCH_LIMIT);
      if (seq !== state.searchSeq) return;
      list.replaceChildren(...movies.map(searchItem));
      if (!movies.length) {
        list.append(el("li", { class: "empty", text: "No title contains “" + q + "”." }));
      }
      if ($("#status").dataset.source === "search") setStatus("");
    } catch (e) {
      if (seq !== state.searchSeq) return;
      list.replaceChildren();
      setStatus("Search failed: " + e.message, "error", "search");
    } finally {
      if (seq === state.searchSeq) list.removeAttribute("aria-busy");
    }
  }

  function searchItem(movie) {
    const li = el("li", { class: "search-result movie-row", "data-movie-id": String(movie.movie_id) });
    li.append(movieInfo(movie, null),
              rateSelect(movie, ratingOf(movie.movie_id), (r) => setRating(movie, r)));
    return li;
  }

  function refreshSearchSelects() {
    for (const select of document.querySelectorAll("#search-results select.rate")) {
      const r = ratingOf(select.dataset.movieId);
      select.value = r === null ? "" : String(r);
      select.options[0].textContent = r === null ? "Rate…" : "No rating";
    }
  }

  // ------------------------------------------------------------------ ratings
  function applyRating(movie, rating) {
    const i = state.rated.findIndex((e) => sameId(e.movie.movie_id, movie.movie_id));
    if (rating === null) {
      if (i >= 0) state.rated.splice(i, 1);
    } else if (i >= 0) {
      state.rated[i].rating = rating;
    } else {
      state.rated.push({ movie, rating });
    }
  }

  function setRating(movie, rating) {
    applyRating(movie, rating);
    if (state.restoring) state.restoring.push([movie, rating]);
    renderRated();
    refreshSearchSelects();
    if (state.stored) saveRating(movie, rating);
  }

  function renderRated() {
    const list = $("#rated");
    list.replaceChildren(...state.rated.map(({ movie, rating }) => {
      const remove = el("button", { type: "button", class: "remove secondary", text: "Remove",
                                    "aria-label": "Remove " + movie.title,
                                    onclick: () => { setRating(movie, null); $("#search").focus(); } });
      const controls = el("div", { class: "controls" },
                          rateSelect(movie, rating, (r) => setRating(movie, r)), remove);
      return el("li", { class: "rated-item movie-row", "data-movie-id": String(movie.movie_id) },
                movieInfo(movie, null), controls);
    }));
    const n = state.rated.length;
    $("#rated-empty").hidden = n > 0;
    $("#rated-count").textContent = n ? "(" + n + ")" : "";
    $("#recommend").disabled = n === 0 || !state.models.length;
  }

  // ------------------------------------------------------------------ recommendations
  async function recommend() {
    if (!state.rated.length || !state.models.length) return;
    const button = $("#recommend");
    button.disabled = true;
    if (state.stored) await state.writes;  // the stored history is the one the models read
    const person = state.stored ? state.person : null;  // none yet (its creation failed): the stateless way
    const ratings = state.rated.map((e) => ({ movie_id: e.movie.movie_id, rating: e.rating }));
    const columns = $("#columns");
    columns.replaceChildren();
    columns.style.setProperty("--n", String(Math.min(state.models.length, 3)));
    $("#results").hidden = false;
    setStatus("Asking " + state.models.length + (state.models.length === 1 ? " model…" : " models…"));
    const answers = await Promise.all(state.models.map(async (m) => {
      const column = el("section", { class: "model-column", "data-model": m.name, "aria-busy": "true",
                                     "aria-label": "Recommendations of " + m.name });
      column.append(el("h3", { text: m.name }),
                    el("p", { class: "summary hint", text: m.summary || m.model }));
      columns.append(column);
      try {
        const body = person
          ? await api(personPath(person, "/recommendations?k=" + K + "&model=" + encodeURIComponent(m.name)),
                      { headers: authHeaders(person) })
          : await api("/v1/recommendations", {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ ratings, k: K, model: m.name }),
          });
        renderColumn(column, m, body);
        return null;
      } catch (e) {
        column.append(el("p", { class: "error-note", text: e.message }));
        return m.name + ": " + e.message;
      } finally {
        column.removeAttribute("aria-busy");
      }
    }));
    const errors = answers.filter((a) => a !== null);
    if (errors.length) setStatus("Some recommendations failed. " + errors.join(" · "), "error");
    else setStatus("Recommendations from " + state.models.length + (state.models.length === 1 ? " model." : " models."));
    button.disabled = state.rated.length === 0;
  }

  function renderColumn(column, model, body) {
    if (body.as_user !== undefined && body.as_user !== null) {  // refreshed on exactly these stored ratings
      column.append(el("p", { class: "hint learnt", text: "This model was trained on your ratings: you are its user "
                                                          + body.as_user + "." }));
    }
    if (body.ignored && body.ignored.length) {
      const names = body.ignored.map((id) => {
        const e = state.rated.find((x) => sameId(x.movie.movie_id, id));
        return e ? e.movie.title : "#" + id;
      });
      column.append(el("p", { class: "hint ignored", text: "Not known to this model: " + names.join(", ") }));
    }
    const list = el("ol", { class: "rec-list movie-list" });
    for (const rec of body.recommendations) {
      const li = el("li", { class: "rec-item", "data-movie-id": String(rec.movie_id) });
      li.append(el("span", { class: "rank", "aria-hidden": "true", text: String(rec.rank) }),
                movieInfo(rec, model.name));
      if (rec.reason) li.querySelector(".movie-info").append(el("span", { class: "reason", text: rec.reason }));
      list.append(li);
    }
    if (!body.recommendations.length) {
      list.append(el("li", { class: "empty", text: "No recommendations." }));
    }
    column.append(list);
  }

  // ------------------------------------------------------------------ similar movies
  async function showSimilar(movie, modelName) {
    const seq = ++state.similarSeq;
    const section = $("#similar");
    const body = $("#similar-body");
    $("#similar-heading").textContent = "Movies like " + movie.title;
    const kinds = [{ by: "content", model: null, title: "By genres and year" }];
    const info = state.models.find((m) => m.name === modelName);
    if (modelName && (!info || info.similar)) kinds.push({ by: "model", model: modelName, title: "By " + modelName });
    body.style.setProperty("--n", String(kinds.length));
    body.replaceChildren();
    section.hidden = false;
    section.setAttribute("aria-busy", "true");
    const blocks = kinds.map((kind) => {
      const block = el("section", { class: "similar-column", "data-by": kind.by },
                       el("h3", { text: kind.title }));
      body.append(block);
      return block;
    });
    section.scrollIntoView({ behavior: "smooth", block: "start" });
    section.focus({ preventScroll: true });
    await Promise.all(kinds.map(async (kind, i) => {
      let url = "/v1/movies/" + encodeURIComponent(movie.movie_id) + "/similar?k=" + K + "&by=" + kind.by;
      if (kind.model) url += "&model=" + encodeURIComponent(kind.model);
      const block = blocks[i];
      try {
        const answer = await api(url);
        if (seq !== state.similarSeq) return;
        const list = el("ol", { class: "similar-list movie-list" });
        for (const s of answer.results) {
          list.append(el("li", { class: "similar-item", "data-movie-id": String(s.movie_id) },
                         el("span", { class: "rank", "aria-hidden": "true", text: String(s.rank) }),
                         movieInfo(s, kind.model)));
        }
        if (!answer.results.length) list.append(el("li", { class: "empty", text: "Nothing similar found." }));
        block.append(list);
      } catch (e) {
        if (seq !== state.similarSeq) return;
        block.append(el("p", { class: "hint unavailable", text: "Not available: " + e.message }));
      }
    }));
    if (seq === state.similarSeq) section.removeAttribute("aria-busy");
  }

  function closeSimilar() {
    state.similarSeq++;
    $("#similar").hidden = true;
    $("#similar-body").replaceChildren();
  }


  // ------------------------------------------------------------------ stored people (serve --db)
  function personPath(person, rest) {
    return "/v1/people/" + encodeURIComponent(person.person_id) + rest;
  }

  function authHeaders(person, extra) {
    return Object.assign({ Authorization: "Bearer " + person.token }, extra || {});
  }

  function savedPerson() {
    try {
      const p = JSON.parse(localStorage.getItem(PERSON_KEY) || "null");
      if (p && Number.isInteger(p.person_id) && typeof p.token === "string" && p.token) return p;
    } catch (e) {
      // unreadable: forgotten below
    }
    forgetSavedPerson();
    return null;
  }

  function forgetSavedPerson() {
    try {
      localStorage.removeItem(PERSON_KEY);
    } catch (e) {
      // storage is off in this browser: nothing was kept
    }
  }

  function keepPerson(person) {
    state.person = person;
    try {
      localStorage.setItem(PERSON_KEY, JSON.stringify({ person_id: person.person_id, token: person.token }));
    } catch (e) {
      // storage is off: the person lasts as long as the page
    }
    renderPerson();
  }

  function renderPerson() {
    const note = $("#person-note");
    if (state.person) {
      $("#person-text").textContent = "Your ratings are saved on this server (person #" + state.person.person_id + ").";
      note.hidden = false;
    } else {
      note.hidden = true;
    }
  }

  // Write one rating (null: its removal) to the server, after every write before it. The first rating creates
  // the person. A failure is shown; the chain goes on.
  function saveRating(movie, rating) {
    const epoch = state.epoch;
    state.writes = state.writes.then(async () => {
      if (epoch !== state.epoch) return;  // forgotten since
      if (!state.person) {
        if (rating === null) return;  // nothing stored yet
        const created = await api("/v1/people", { method: "POST" });
        if (epoch !== state.epoch) return;
        keepPerson(created);
      }
      const person = state.person;
      const url = personPath(person, "/ratings/" + encodeURIComponent(movie.movie_id));
      try {
        if (rating === null) {
          await api(url, { method: "DELETE", headers: authHeaders(person) });
        } else {
          await api(url, { method: "PUT", headers: authHeaders(person, { "Content-Type": "application/json" }),
                           body: JSON.stringify({ rating }) });
        }
      } catch (e) {
        if (rating === null && e.status === 404) return;  // not stored: removed all the same
        throw e;
      }
    }).catch((e) => {
      setStatus("Your rating of " + movie.title + " was not saved: " + e.message, "error", "save");
    });
  }

  // The saved person's ratings, in the stored order, with each movie's details.
  async function restorePerson(person, attempt) {
    const list = $("#rated");
    list.setAttribute("aria-busy", "true");
    state.restoring = state.restoring || [];
    try {
      const answer = await api(personPath(person, "/ratings"), { headers: authHeaders(person) });
      const movies = await Promise.all(answer.ratings.map(async (r) => {
        const fallback = { movie_id: r.movie_id, title: r.title || "Movie " + r.movie_id };
        if (r.title === null) return fallback;  // no served model has it any more
        try {
          return await api("/v1/movies/" + encodeURIComponent(r.movie_id));
        } catch (e) {
          return fallback;
        }
      }));
      if (state.person !== person) return;  // forgotten meanwhile
      const meanwhile = state.restoring;
      state.rated = answer.ratings.map((r, i) => ({ movie: movies[i], rating: r.rating }));
      for (const [movie, rating] of meanwhile) applyRating(movie, rating);
      state.restoring = null;
      renderRated();
      refreshSearchSelects();
      list.removeAttribute("aria-busy");
    } catch (e) {
      if (state.person !== person) return;
      if (e.status === 503 && attempt < 60) {  // the models are loading: the titles come with them
        setTimeout(() => restorePerson(person, attempt + 1), 2000);
        return;
      }
      state.restoring = null;
      list.removeAttribute("aria-busy");
      if (e.status === 401 || e.status === 403) {  // not a person of this server (a new database)
        state.person = null;
        forgetSavedPerson();
        renderPerson();
        setStatus("Your saved ratings are not on this server any more; rate movies to start afresh.");
      } else {
        setStatus("Your saved ratings could not be loaded: " + e.message, "error");
      }
    }
  }

  function forgetMe() {
    state.epoch++;
    state.person = null;
    state.restoring = null;
    forgetSavedPerson();
    state.rated = [];
    $("#rated").removeAttribute("aria-busy");
    renderRated();
    refreshSearchSelects();
    renderPerson();
    $("#results").hidden = true;
    $("#columns").replaceChildren();
    setStatus("This page has forgotten you; your next rating starts a new list.");
    $("#search").focus();
  }

  // Whether the server stores people: GET /health's "people" (its body answers even while loading).
  async function startStored() {
    let health = null;
    try {
      const res = await fetch("/health");
      health = await res.json();
    } catch (e) {
      health = null;
    }
    if (!health || health.people !== true) return;
    state.stored = true;
    const person = savedPerson();
    if (!person) return;
    state.person = person;
    renderPerson();
    await restorePerson(person, 0);
  }

  // ------------------------------------------------------------------ start
  async function loadModels(attempt) {
    try {
      state.models = await api("/v1/models");
      $("#models-line").textContent = "Serving " + state.models.map((m) => m.name).join(", ") + ".";
      // clear its own "loading" line only: a message that came meanwhile (a saved person this server does not
      // know) stays
      if ($("#status").dataset.source === "models") setStatus("");
      renderRated();
    } catch (e) {
      if (e.status === 503 && attempt < 60) {
        setStatus("The models are loading; the page will be ready in a moment.", "", "models");
        setTimeout(() => loadModels(attempt + 1), 2000);
      } else {
        setStatus("The models are not available: " + e.message, "error", "models");
      }
    }
  }

  function start() {
    $("#search").addEventListener("input", onSearchInput);
    $("#search").addEventListener("keydown", (e) => {
      if (e.key === "Enter") { clearTimeout(searchTimer); runSearch(); }
    });
    $("#recommend").addEventListener("click", recommend);
    $("#similar-close").addEventListener("click", closeSimilar);
    $("#forget").addEventListener("click", forgetMe);
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && !$("#similar").hidden) closeSimilar();
    });
    renderRated();
    loadModels(0);
    startStored();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
