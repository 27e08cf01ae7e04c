// The rating page of `kto-lab rate`: a student rates a small model's answers with 👍/👎.
//
// Everything lives on the server (`api/*`, relative to the page; each call carries the
// `X-Rate-Token` header, whose value comes from this page's `?token=`): the page only shows the
// state the server returns, so a reload, a second tab or a closed laptop lose nothing. The page keeps one thing of its
// own: the rater's name, in localStorage (`kto-lab-rater`), to resume without asking again.
//
// For tests (scripts/check_rate_page.py): #app carries data-view (loading | name | rating |
// done), data-busy (true while a request is in flight) and data-answer (the current answer's id).
'use strict';

(() => {
  const STORE_KEY = 'kto-lab-rater';
  const ANONYMOUS = 'anonymous';
  // The server's rule (feedback::check_rater_name): char::is_alphanumeric, space, _ . -, 1 to 40
  // characters (code points, as the `u` flag counts them).
  const NAME_RE = /^[\p{Alphabetic}\p{N} _.\-]{1,40}$/u;
  const REQUEST_TIMEOUT_MS = 20000;
  const VOTE_WORDS = { up: 'thumbs up', down: 'thumbs down', skip: 'skip' };
  const SAVED_WORDS = { up: 'Thumbs up saved.', down: 'Thumbs down saved.', skip: 'Skipped.' };
  const KEYS = {
    u: 'up', U: 'up', ArrowUp: 'up',
    d: 'down', D: 'down', ArrowDown: 'down',
    s: 'skip', S: 'skip', ArrowRight: 'skip',
    z: 'undo', Z: 'undo', Backspace: 'undo',
  };

  const $ = (id) => document.getElementById(id);
  const app = $('app');
  const el = {
    title: $('session-title'), progressText: $('progress-text'), progressBar: $('progress-bar'),
    error: $('error'), nameForm: $('name-form'), nameInput: $('rater-input'),
    nameProblem: $('name-problem'), start: $('start'), cancelName: $('cancel-name'),
    rating: $('rating'), raterName: $('rater-name'), changeName: $('change-name'),
    answer: $('answer'), position: $('position'), prompt: $('prompt'), completion: $('completion'),
    done: $('done'), doneSummary: $('done-summary'), announce: $('announce'), model: $('model'),
    up: $('vote-up'), down: $('vote-down'), skip: $('vote-skip'), undo: $('undo'),
  };
  const voteButtons = { up: el.up, down: el.down, skip: el.skip };

  const token = new URLSearchParams(window.location.search).get('token') || '';
  let config = null; // GET /api/config
  let state = null; // the last State the server sent
  let busy = false;

  // ---- talking to the server ----------------------------------------------------------

  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status; // 0 when the server was not reached
    }
  }

  async function api(method, path, body) {
    const headers = { 'X-Rate-Token': token, Accept: 'application/json' };
    const init = { method, headers, cache: 'no-store', credentials: 'same-origin' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const abort = new AbortController();
    init.signal = abort.signal;
    const timer = setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS);
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError(abort.signal.aborted
        ? 'The rating server did not answer in time. Your place is kept: try again.'
        : 'Cannot reach the rating server: is kto-lab rate still running? Your place is kept; try again.', 0);
    } finally {
      clearTimeout(timer);
    }
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    if (!response.ok) {
      const message = data && typeof data.error === 'string' && data.error
        ? data.error
        : `The server answered HTTP ${response.status}.`;
      throw new ApiError(message, response.status);
    }
    if (data === null) {
      throw new ApiError('The server sent a reply this page cannot read.', response.status);
    }
    return data;
  }

  // ---- messages -----------------------------------------------------------------------

  function showError(message) {
    el.error.textContent = message;
    el.error.hidden = false;
  }

  function clearError() {
    el.error.hidden = true;
    el.error.textContent = '';
  }

  let announceTimer = null;
  function announce(text) {
    // Emptied first so that the same sentence twice is still read out.
    el.announce.textContent = '';
    clearTimeout(announceTimer);
    announceTimer = setTimeout(() => { el.announce.textContent = text; }, 60);
  }

  // ---- the rater's name ---------------------------------------------------------------

  function storedName() {
    try {
      return window.localStorage.getItem(STORE_KEY) || '';
    } catch (e) {
      return '';
    }
  }

  function storeName(name) {
    try {
      window.localStorage.setItem(STORE_KEY, name);
    } catch (e) {
      // Private windows may refuse: the name is then asked again after a reload.
    }
  }

  // The name to send, or an object saying what is wrong with what was typed.
  function checkName(typed) {
    const name = typed.trim();
    if (!name) {
      if (config && config.names_required) {
        return { problem: 'Type your name to start: the votes are filed under it.' };
      }
      return { name: ANONYMOUS };
    }
    if (!NAME_RE.test(name)) {
      return { problem: 'A name is 1 to 40 letters, digits, spaces, “_”, “.” or “-”.' };
    }
    if (config && config.names_required && name === ANONYMOUS) {
      return { problem: 'Type your own name: this session asks every rater for one.' };
    }
    return { name };
  }

  function showNameForm(prefill, canCancel) {
    app.dataset.view = 'name';
    el.rating.hidden = true;
    el.nameForm.hidden = false;
    el.cancelName.hidden = !canCancel;
    el.start.textContent = canCancel ? 'Use this name' : 'Start rating';
    el.nameInput.value = prefill === ANONYMOUS ? '' : prefill;
    el.nameInput.placeholder = config && config.names_required ? 'Your name' : `Your name (empty: ${ANONYMOUS})`;
    el.nameInput.required = Boolean(config && config.names_required);
    el.nameProblem.hidden = true;
    el.nameInput.removeAttribute('aria-invalid');
    el.nameInput.focus();
  }

  function hideNameForm() {
    el.nameForm.hidden = true;
    el.rating.hidden = false;
  }

  async function startAs(name, { fromForm }) {
    setBusy(true);
    try {
      const fresh = await api('GET', `api/state?rater=${encodeURIComponent(name)}`);
      clearError();
      storeName(name);
      const changed = state !== null && state.rater !== fresh.rater;
      state = fresh;
      hideNameForm();
      render();
      const where = state.current
        ? `${state.rated} rated, ${state.remaining} to go. Question: ${state.current.prompt}`
        : 'Every answer is handled.';
      announce(`${changed ? 'Now rating' : 'Rating'} as ${state.rater}. ${where}`);
    } catch (e) {
      showError(e.message);
      if (fromForm) {
        el.nameInput.focus();
      } else if (state === null) {
        // The stored name did not work: ask for one.
        showNameForm(name, false);
      }
    } finally {
      setBusy(false);
      focusAfter(null);
    }
  }

  el.nameForm.addEventListener('submit', (event) => {
    event.preventDefault();
    if (busy) return;
    const checked = checkName(el.nameInput.value);
    if (checked.problem) {
      el.nameProblem.textContent = checked.problem;
      el.nameProblem.hidden = false;
      el.nameInput.setAttribute('aria-invalid', 'true');
      el.nameInput.focus();
      return;
    }
    startAs(checked.name, { fromForm: true });
  });

  el.changeName.addEventListener('click', () => {
    if (busy) return;
    showNameForm(state ? state.rater : storedName(), state !== null);
  });

  function cancelNameChange() {
    if (state === null) return;
    hideNameForm();
    render();
    el.changeName.focus();
  }
  el.cancelName.addEventListener('click', cancelNameChange);
  el.nameInput.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && !el.cancelName.hidden) {
      event.preventDefault();
      cancelNameChange();
    }
  });
  el.nameInput.addEventListener('input', () => {
    if (!el.nameProblem.hidden && !checkName(el.nameInput.value).problem) {
      el.nameProblem.hidden = true;
      el.nameInput.removeAttribute('aria-invalid');
    }
  });

  // ---- showing the state --------------------------------------------------------------

  function progressLine(s) {
    const parts = [`${s.rated} rated`];
    if (s.skipped > 0) parts.push(`${s.skipped} skipped`);
    parts.push(`${s.remaining} to go`);
    if (typeof s.up_share === 'number') parts.push(`👍 ${Math.round(s.up_share * 100)}%`);
    return parts.join(' · ');
  }

  function render() {
    const s = state;
    if (!s) return;
    el.raterName.textContent = s.rater;
    el.progressText.textContent = progressLine(s);
    el.progressBar.max = Math.max(1, s.total);
    el.progressBar.value = Math.max(0, s.total - s.remaining);
    el.progressBar.setAttribute('aria-valuetext', `${s.total - s.remaining} of ${s.total} answers handled`);
    if (s.current) {
      app.dataset.view = 'rating';
      app.dataset.answer = s.current.id;
      el.answer.hidden = false;
      el.done.hidden = true;
      el.position.textContent = `(${s.total - s.remaining + 1} of ${s.total})`;
      el.prompt.textContent = s.current.prompt;
      el.completion.textContent = s.current.completion;
    } else {
      app.dataset.view = 'done';
      delete app.dataset.answer;
      el.answer.hidden = true;
      el.done.hidden = false;
      el.doneSummary.textContent =
        `You handled all ${s.total} answers: ${s.up} 👍, ${s.down} 👎, ${s.skipped} skipped.`;
    }
    updateButtons();
  }

  function updateButtons() {
    const ready = state !== null && !busy;
    for (const button of Object.values(voteButtons)) {
      button.disabled = !(ready && state.current);
    }
    el.undo.disabled = !(ready && state.can_undo);
    el.start.disabled = busy;
    el.changeName.disabled = busy;
  }

  function setBusy(value) {
    busy = value;
    app.dataset.busy = String(value);
    updateButtons();
  }

  // Disabling or hiding the focused control drops focus to <body>: give it back, so keyboard
  // users keep their place (to the first button that can be used when that one no longer can).
  function focusAfter(button) {
    const active = document.activeElement;
    if (active && active !== document.body && !active.disabled && !active.closest('[hidden]')) return;
    if (!el.nameForm.hidden) return;
    const candidates = [button, el.up, el.undo].filter((b) => b && !b.disabled);
    if (candidates.length) candidates[0].focus({ preventScroll: true });
  }

  // ---- voting -------------------------------------------------------------------------

  async function vote(kind) {
    if (busy || !state || !state.current) return;
    const button = voteButtons[kind];
    setBusy(true);
    try {
      state = await api('POST', 'api/vote', { rater: state.rater, answer: state.current.id, vote: kind });
      clearError();
      render();
      announce(state.current
        ? `${SAVED_WORDS[kind]} Next question: ${state.current.prompt}`
        : `${SAVED_WORDS[kind]} That was the last one: every answer is handled.`);
    } catch (e) {
      await failed(e);
    } finally {
      setBusy(false);
      focusAfter(button);
    }
  }

  async function undo() {
    if (busy || !state || !state.can_undo) return;
    const taken = state.last;
    setBusy(true);
    try {
      state = await api('POST', 'api/undo', { rater: state.rater });
      clearError();
      render();
      const what = taken ? `your ${VOTE_WORDS[taken.vote] || 'vote'}` : 'your last vote';
      announce(state.current
        ? `Undone: ${what} is taken back. This question again: ${state.current.prompt}`
        : `Undone: ${what} is taken back.`);
    } catch (e) {
      await failed(e);
    } finally {
      setBusy(false);
      focusAfter(el.undo);
    }
  }

  // A refused vote or undo: say why, keep the place. When the server did answer (a stale tab,
  // say), ask it where this rater stands, quietly, so that the page shows the truth.
  async function failed(error) {
    showError(error.message);
    announce(`Not saved: ${error.message}`);
    if (error.status > 0 && state) {
      try {
        state = await api('GET', `api/state?rater=${encodeURIComponent(state.rater)}`);
      } catch (e) {
        // Keep showing what we had.
      }
    }
    render();
  }

  for (const [kind, button] of Object.entries(voteButtons)) {
    button.addEventListener('click', () => vote(kind));
  }
  el.undo.addEventListener('click', () => undo());

  // ---- keyboard shortcuts -------------------------------------------------------------

  function typingIn(target) {
    if (!(target instanceof Element)) return false;
    return target.isContentEditable || Boolean(target.closest('input, textarea, select, [contenteditable]'));
  }

  document.addEventListener('keydown', (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    const action = KEYS[event.key];
    if (!action || typingIn(event.target)) return;
    if (el.rating.hidden || !el.nameForm.hidden || !state) return;
    event.preventDefault(); // no scrolling on arrows, no "back" on Backspace
    if (event.repeat) return; // a held key is one vote, not many
    if (action === 'undo') {
      undo();
    } else {
      vote(action);
    }
  });

  // ---- start --------------------------------------------------------------------------

  async function main() {
    app.dataset.busy = 'false';
    updateButtons();
    if (!token) {
      el.progressText.textContent = 'No token in this link.';
      showError('This link has no ?token=… part: open the exact link that kto-lab rate printed.');
      return;
    }
    try {
      config = await api('GET', 'api/config');
    } catch (e) {
      el.progressText.textContent = 'Not connected.';
      showError(`${e.message} Reload the page to try again.`);
      return;
    }
    if (config.model) el.model.textContent = String(config.model).replace(/\.\s*$/, '');
    if (config.title && config.title !== "Rate the model's answers") {
      el.title.textContent = config.title;
      el.title.hidden = false;
      document.title = `${config.title} · Rate the model's answers`;
    }
    el.progressText.textContent = `${config.total} answers to rate`;
    const saved = checkName(storedName());
    if (storedName() && saved.name) {
      await startAs(saved.name, { fromForm: false });
    } else {
      showNameForm(storedName(), false);
    }
  }

  main();
})();
