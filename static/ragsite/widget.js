/*!
 * ragsite chat widget: "Ask the book" on any page with one script tag.
 *
 *   <script src="https://<backend>/static/ragsite/widget.js"
 *           data-api="https://<backend>" defer></script>
 *
 * Plain JavaScript, no build step, no dependencies, no requests except to the API.
 * Everything the widget draws lives in the shadow root of one <ragsite-chat> element,
 * so the host page's CSS cannot reach it. Answers are rendered by building DOM nodes
 * (textContent, createElement): no text from the answer or the book is ever parsed as
 * HTML. The HTTP contract it speaks is docs/api.md; its options are docs/widget.md.
 *
 * The file is pure ASCII (non-ASCII text is written as \u escapes), so it works even
 * when a host page or server declares another character set.
 */
(() => {
  "use strict";

  const TAG = "ragsite-chat";
  if (window.customElements && window.customElements.get(TAG)) return; // loaded twice

  const MAX_MESSAGE = 2000; // API.md: message 1..2000 chars
  const MAX_SELECTION = 5000; // API.md: selection <= 5000 chars
  const KEPT_ENTRIES = 12; // transcript entries kept across reloads (6 turns)
  const STORE_VERSION = 1;

  // --- UI strings ------------------------------------------------------------------

  const STRINGS = {
    en: {
      launcher: "Ask the book",
      title: "Ask the book",
      placeholder: "Ask a question about the book\u2026",
      inputLabel: "Your question",
      send: "Send",
      stop: "Stop",
      close: "Close",
      newChat: "New conversation",
      welcome: "Ask anything about this book. Answers cite the sections they come from.",
      tryAsking: "Try asking",
      sources: "Sources",
      source: "Source",
      searching: "Searching the book\u2026",
      you: "You",
      assistant: "Answer",
      aboutPassage: "About this passage",
      helpful: "Helpful",
      notHelpful: "Not helpful",
      feedbackThanks: "Thanks, your feedback was recorded.",
      feedbackFailed: "Your feedback could not be recorded.",
      copy: "Copy answer",
      copied: "Copied",
      copyFailed: "Could not copy",
      followUps: "Related questions",
      extractive: "This answer quotes the book directly; no AI model wrote it.",
      uncertain: "The book may not fully answer this. Check the sources.",
      stopped: "Stopped.",
      askSelection: "Ask about this",
      explainSelection: "Explain this passage",
      errNetwork: "Could not reach the server. Check your connection and try again.",
      errRate: "Too many questions right now. Please wait {s} seconds and try again.",
      errRateSoon: "Too many questions right now. Please wait a moment and try again.",
      errServer: "The server could not answer (error {status}). Please try again later.",
      errCutOff: "The answer was cut off. Please try again.",
      errAnswer: "Something went wrong while answering. Please try again.",
    },
    fr: {
      launcher: "Interroger le livre",
      title: "Interroger le livre",
      placeholder: "Posez une question sur le livre\u2026",
      inputLabel: "Votre question",
      send: "Envoyer",
      stop: "Arr\u00eater",
      close: "Fermer",
      newChat: "Nouvelle conversation",
      welcome: "Posez une question sur ce livre. Les r\u00e9ponses citent les sections d\u2019o\u00f9 elles viennent.",
      tryAsking: "Par exemple",
      sources: "Sources",
      source: "Source",
      searching: "Recherche dans le livre\u2026",
      you: "Vous",
      assistant: "R\u00e9ponse",
      aboutPassage: "\u00c0 propos de ce passage",
      helpful: "Utile",
      notHelpful: "Pas utile",
      feedbackThanks: "Merci, votre avis a \u00e9t\u00e9 enregistr\u00e9.",
      feedbackFailed: "Votre avis n\u2019a pas pu \u00eatre enregistr\u00e9.",
      copy: "Copier la r\u00e9ponse",
      copied: "Copi\u00e9",
      copyFailed: "Copie impossible",
      followUps: "Questions li\u00e9es",
      extractive: "Cette r\u00e9ponse cite le livre directement ; aucun mod\u00e8le d\u2019IA ne l\u2019a r\u00e9dig\u00e9e.",
      uncertain: "Le livre ne r\u00e9pond peut-\u00eatre pas enti\u00e8rement. V\u00e9rifiez les sources.",
      stopped: "Arr\u00eat\u00e9.",
      askSelection: "Demander \u00e0 ce sujet",
      explainSelection: "Explique ce passage",
      errNetwork: "Impossible de joindre le serveur. V\u00e9rifiez votre connexion et r\u00e9essayez.",
      errRate: "Trop de questions pour le moment. R\u00e9essayez dans {s} secondes.",
      errRateSoon: "Trop de questions pour le moment. R\u00e9essayez dans un instant.",
      errServer: "Le serveur n\u2019a pas pu r\u00e9pondre (erreur {status}). R\u00e9essayez plus tard.",
      errCutOff: "La r\u00e9ponse a \u00e9t\u00e9 interrompue. Veuillez r\u00e9essayer.",
      errAnswer: "Un probl\u00e8me est survenu pendant la r\u00e9ponse. Veuillez r\u00e9essayer.",
    },
    es: {
      launcher: "Pregunta al libro",
      title: "Pregunta al libro",
      placeholder: "Haz una pregunta sobre el libro\u2026",
      inputLabel: "Tu pregunta",
      send: "Enviar",
      stop: "Detener",
      close: "Cerrar",
      newChat: "Nueva conversaci\u00f3n",
      welcome: "Pregunta lo que quieras sobre este libro. Las respuestas citan las secciones de donde salen.",
      tryAsking: "Prueba a preguntar",
      sources: "Fuentes",
      source: "Fuente",
      searching: "Buscando en el libro\u2026",
      you: "T\u00fa",
      assistant: "Respuesta",
      aboutPassage: "Sobre este pasaje",
      helpful: "\u00datil",
      notHelpful: "No es \u00fatil",
      feedbackThanks: "Gracias, tu opini\u00f3n qued\u00f3 registrada.",
      feedbackFailed: "No se pudo registrar tu opini\u00f3n.",
      copy: "Copiar respuesta",
      copied: "Copiado",
      copyFailed: "No se pudo copiar",
      followUps: "Preguntas relacionadas",
      extractive: "Esta respuesta cita el libro directamente; no la escribi\u00f3 un modelo de IA.",
      uncertain: "Puede que el libro no responda del todo. Revisa las fuentes.",
      stopped: "Detenido.",
      askSelection: "Preguntar sobre esto",
      explainSelection: "Explica este pasaje",
      errNetwork: "No se pudo conectar con el servidor. Revisa tu conexi\u00f3n e int\u00e9ntalo de nuevo.",
      errRate: "Demasiadas preguntas ahora mismo. Espera {s} segundos e int\u00e9ntalo de nuevo.",
      errRateSoon: "Demasiadas preguntas ahora mismo. Espera un momento e int\u00e9ntalo de nuevo.",
      errServer: "El servidor no pudo responder (error {status}). Int\u00e9ntalo m\u00e1s tarde.",
      errCutOff: "La respuesta se cort\u00f3. Int\u00e9ntalo de nuevo.",
      errAnswer: "Algo sali\u00f3 mal al responder. Int\u00e9ntalo de nuevo.",
    },
    de: {
      launcher: "Frag das Buch",
      title: "Frag das Buch",
      placeholder: "Stelle eine Frage zum Buch\u2026",
      inputLabel: "Deine Frage",
      send: "Senden",
      stop: "Stopp",
      close: "Schlie\u00dfen",
      newChat: "Neues Gespr\u00e4ch",
      welcome: "Frag alles \u00fcber dieses Buch. Antworten nennen die Abschnitte, aus denen sie stammen.",
      tryAsking: "Zum Beispiel",
      sources: "Quellen",
      source: "Quelle",
      searching: "Das Buch wird durchsucht\u2026",
      you: "Du",
      assistant: "Antwort",
      aboutPassage: "Zu dieser Passage",
      helpful: "Hilfreich",
      notHelpful: "Nicht hilfreich",
      feedbackThanks: "Danke, dein Feedback wurde gespeichert.",
      feedbackFailed: "Dein Feedback konnte nicht gespeichert werden.",
      copy: "Antwort kopieren",
      copied: "Kopiert",
      copyFailed: "Kopieren fehlgeschlagen",
      followUps: "Verwandte Fragen",
      extractive: "Diese Antwort zitiert das Buch direkt; kein KI-Modell hat sie geschrieben.",
      uncertain: "Das Buch beantwortet dies wom\u00f6glich nicht vollst\u00e4ndig. Pr\u00fcfe die Quellen.",
      stopped: "Gestoppt.",
      askSelection: "Dazu fragen",
      explainSelection: "Erkl\u00e4re diese Passage",
      errNetwork: "Der Server ist nicht erreichbar. Pr\u00fcfe deine Verbindung und versuche es erneut.",
      errRate: "Gerade zu viele Fragen. Bitte warte {s} Sekunden und versuche es erneut.",
      errRateSoon: "Gerade zu viele Fragen. Bitte warte einen Moment und versuche es erneut.",
      errServer: "Der Server konnte nicht antworten (Fehler {status}). Bitte sp\u00e4ter erneut versuchen.",
      errCutOff: "Die Antwort wurde abgebrochen. Bitte versuche es erneut.",
      errAnswer: "Beim Antworten ist etwas schiefgegangen. Bitte versuche es erneut.",
    },
  };

  // --- Server-sent events ----------------------------------------------------------

  /** Incremental text/event-stream parser: feed decoded text, get complete events. */
  class SSEParser {
    constructor() {
      this.buffer = "";
      this.eventName = "";
      this.dataLines = [];
    }

    /** Add text; return the events it completed. `end` flushes a final unterminated event. */
    push(text, end = false) {
      const events = [];
      this.buffer += text;
      const lineEnd = /\r\n|\n|\r/g;
      let start = 0;
      let match;
      while ((match = lineEnd.exec(this.buffer))) {
        // A lone "\r" at the very end may be the first half of a "\r\n" split across chunks.
        if (match[0] === "\r" && match.index === this.buffer.length - 1 && !end) break;
        this.line(this.buffer.slice(start, match.index), events);
        start = match.index + match[0].length;
      }
      this.buffer = this.buffer.slice(start);
      if (end) {
        if (this.buffer) this.line(this.buffer, events);
        this.buffer = "";
        this.line("", events);
      }
      return events;
    }

    line(line, events) {
      if (line === "") {
        if (this.dataLines.length) {
          events.push({ event: this.eventName || "message", data: this.dataLines.join("\n") });
        }
        this.eventName = "";
        this.dataLines = [];
        return;
      }
      if (line[0] === ":") return; // comment / keep-alive
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value[0] === " ") value = value.slice(1);
      if (field === "event") this.eventName = value;
      else if (field === "data") this.dataLines.push(value);
      // "id" and "retry" mean nothing for a one-shot POST stream.
    }
  }

  // --- Safe Markdown ---------------------------------------------------------------
  //
  // A small subset (paragraphs, headings, lists, quotes, fenced and inline code, bold,
  // emphasis, http(s) links, [n] citations) turned directly into DOM nodes. Nothing is
  // ever assigned to innerHTML, so "<img onerror=...>" in an answer stays visible text.

  const INLINE_RULES = [
    ["code", /`([^`\n]+?)`/],
    ["link", /\[([^[\]\n]+)\]\(\s*<?([^\s<>()]*)>?(?:\s+"[^"\n]*")?\s*\)/],
    ["cite", /\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\](?!\()/],
    ["strong", /\*\*(?=\S)([^\n]*?\S)\*\*/],
    ["em", /\*(?=[^\s*])([^*\n]*?[^\s*])\*/],
    ["url", /\bhttps?:\/\/[^\s<>"'`]*[^\s<>"'`.,;:!?)\]]/],
  ];

  /** The URL if it is an absolute http(s) URL, else null (javascript:, data:, relative...). */
  function safeHref(raw) {
    try {
      const url = new URL(raw);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch {
      return null;
    }
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const [key, value] of Object.entries(attrs)) {
        if (value === null || value === undefined || value === false) continue;
        if (key === "text") node.textContent = value;
        else if (key === "class") node.className = value;
        else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
        else node.setAttribute(key, value === true ? "" : String(value));
      }
    }
    for (const child of children || []) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function externalLink(href, children) {
    return el("a", { href, target: "_blank", rel: "noopener noreferrer" }, children);
  }

  /** Inline Markdown -> nodes. `ctx.cite(n)` makes a citation node (or null for "[n]" text). */
  function renderInline(text, ctx, depth = 0) {
    const out = [];
    let rest = text;
    while (rest) {
      let best = null;
      if (depth < 4) {
        for (const [type, pattern] of INLINE_RULES) {
          const match = pattern.exec(rest);
          if (match && (!best || match.index < best.match.index)) best = { type, match };
        }
      }
      if (!best) {
        out.push(document.createTextNode(rest));
        break;
      }
      const { type, match } = best;
      if (match.index) out.push(document.createTextNode(rest.slice(0, match.index)));
      rest = rest.slice(match.index + match[0].length);
      if (type === "code") {
        out.push(el("code", { text: match[1] }));
      } else if (type === "strong" || type === "em") {
        out.push(el(type, null, renderInline(match[1], ctx, depth + 1)));
      } else if (type === "link") {
        const href = safeHref(match[2]);
        const label = renderInline(match[1], ctx, depth + 1);
        out.push(...(href ? [externalLink(href, label)] : label));
      } else if (type === "url") {
        const href = safeHref(match[0]);
        out.push(href ? externalLink(href, [match[0]]) : document.createTextNode(match[0]));
      } else if (type === "cite") {
        const numbers = match[1].split(/\s*[,;]\s*/).map(Number);
        const nodes = numbers.map((n) => (ctx && ctx.cite ? ctx.cite(n) : null));
        if (nodes.every(Boolean)) out.push(...nodes);
        else out.push(document.createTextNode(match[0]));
      }
    }
    return out;
  }

  /** Lines joined with <br>, each rendered inline. */
  function renderLines(lines, ctx) {
    const out = [];
    lines.forEach((line, i) => {
      if (i) out.push(el("br"));
      out.push(...renderInline(line.trim(), ctx));
    });
    return out;
  }

  const FENCE = /^\s{0,3}(`{3,}|~{3,})\s*([\w+#.-]*)[^`]*$/;
  const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
  const RULE = /^\s{0,3}([-*_])(?:\s*\1){2,}\s*$/;
  const QUOTE = /^\s{0,3}>\s?/;
  const LIST_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;

  function isBlockStart(line) {
    return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || LIST_ITEM.test(line);
  }

  /** Block Markdown -> a DocumentFragment. */
  function renderMarkdown(source, ctx, depth = 0) {
    const fragment = document.createDocumentFragment();
    const lines = String(source || "").replace(/\r\n?/g, "\n").split("\n");
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      const fence = FENCE.exec(line);
      if (fence) {
        // Fenced code; an unclosed fence (mid-stream) runs to the end.
        const marker = fence[1];
        const body = [];
        i += 1;
        while (i < lines.length && !(lines[i].trim().startsWith(marker) && lines[i].trim().replace(/[`~]/g, "") === "")) {
          body.push(lines[i]);
          i += 1;
        }
        i += 1;
        const code = el("code", { text: body.join("\n") });
        if (fence[2]) code.setAttribute("data-lang", fence[2]);
        fragment.append(el("pre", { tabindex: "0" }, [code]));
        continue;
      }
      if (!line.trim()) {
        i += 1;
        continue;
      }
      const heading = HEADING.exec(line);
      if (heading) {
        const level = Math.min(heading[1].length + 2, 6);
        fragment.append(el(`h${level}`, null, renderInline(heading[2], ctx)));
        i += 1;
        continue;
      }
      if (RULE.test(line)) {
        fragment.append(el("hr"));
        i += 1;
        continue;
      }
      if (QUOTE.test(line)) {
        const body = [];
        while (i < lines.length && lines[i].trim() && QUOTE.test(lines[i])) {
          body.push(lines[i].replace(QUOTE, ""));
          i += 1;
        }
        const quote = el("blockquote");
        if (depth < 3) quote.append(renderMarkdown(body.join("\n"), ctx, depth + 1));
        else quote.append(...renderLines(body, ctx));
        fragment.append(quote);
        continue;
      }
      const item = LIST_ITEM.exec(line);
      if (item) {
        const [list, next] = renderList(lines, i, ctx, depth);
        fragment.append(list);
        i = next;
        continue;
      }
      const paragraph = [];
      while (i < lines.length && lines[i].trim() && (!paragraph.length || !isBlockStart(lines[i]))) {
        paragraph.push(lines[i]);
        i += 1;
      }
      fragment.append(el("p", null, renderLines(paragraph, ctx)));
    }
    return fragment;
  }

  /** One list starting at lines[start]; returns [element, index after the list]. */
  function renderList(lines, start, ctx, depth) {
    const first = LIST_ITEM.exec(lines[start]);
    const indent = first[1].length;
    const ordered = /\d/.test(first[2]);
    const list = el(ordered ? "ol" : "ul");
    if (ordered && parseInt(first[2], 10) !== 1) list.setAttribute("start", parseInt(first[2], 10));
    let i = start;
    while (i < lines.length) {
      const match = LIST_ITEM.exec(lines[i]);
      if (!match || match[1].length > indent + 1 || /\d/.test(match[2]) !== ordered) break;
      const body = [match[3]];
      const contentIndent = match[1].length + match[2].length + 1;
      i += 1;
      while (i < lines.length) {
        const current = lines[i];
        const currentIndent = current.length - current.trimStart().length;
        if (!current.trim()) {
          // A blank line continues the item only when indented content follows.
          const after = lines[i + 1];
          if (after !== undefined && after.trim() && after.length - after.trimStart().length > indent) {
            body.push("");
            i += 1;
            continue;
          }
          break;
        }
        if (currentIndent > indent) {
          body.push(current.slice(Math.min(currentIndent, contentIndent)));
        } else if (!isBlockStart(current)) {
          body.push(current); // lazy continuation of the item's paragraph
        } else {
          break;
        }
        i += 1;
      }
      const nested = body.slice(1).some((l) => isBlockStart(l) || !l.trim());
      const li = el("li");
      if (nested && depth < 3) li.append(renderMarkdown(body.join("\n"), ctx, depth + 1));
      else li.append(...renderLines(body.filter((l) => l.trim()), ctx));
      list.append(li);
      if (i < lines.length && !lines[i].trim()) {
        // Skip blank lines between items of a loose list.
        let j = i;
        while (j < lines.length && !lines[j].trim()) j += 1;
        const nextItem = j < lines.length && LIST_ITEM.exec(lines[j]);
        if (nextItem && nextItem[1].length <= indent + 1 && /\d/.test(nextItem[2]) === ordered) i = j;
        else break;
      }
    }
    return [list, i];
  }

  // --- Small helpers ---------------------------------------------------------------

  function svgIcon(paths, size = 18) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", size);
    svg.setAttribute("height", size);
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    for (const d of paths) {
      const path = document.createElementNS(ns, "path");
      path.setAttribute("d", d);
      svg.append(path);
    }
    return svg;
  }

  const ICONS = {
    chat: ["M4 5.5A2.5 2.5 0 0 1 6.5 3h11A2.5 2.5 0 0 1 20 5.5v8a2.5 2.5 0 0 1-2.5 2.5H10l-4.2 3.6A.5.5 0 0 1 5 19.2V16h0A2.5 2.5 0 0 1 4 13.5z"],
    close: ["M6 6l12 12M18 6L6 18"],
    send: ["M4 12l16-8-6 16-2.5-6.5z", "M11.5 13.5L20 4"],
    stop: ["M7 7h10v10H7z"],
    plus: ["M12 5v14M5 12h14"],
    up: ["M7 10v10H4V10zM7 10l4-7a2 2 0 0 1 3 2l-1 5h6a2 2 0 0 1 2 2.3l-1.3 6A2 2 0 0 1 17.7 20H7"],
    down: ["M7 14V4H4v10zM7 14l4 7a2 2 0 0 0 3-2l-1-5h6a2 2 0 0 0 2-2.3l-1.3-6A2 2 0 0 0 17.7 4H7"],
    copy: ["M9 9h10v11H9z", "M5 15V4h10"],
    quote: ["M5 6h14M5 12h14M5 18h9"],
  };

  function format(template, values) {
    return template.replace(/\{(\w+)\}/g, (_, key) => (key in values ? String(values[key]) : ""));
  }

  function parseStarters(raw) {
    if (!raw) return [];
    let items = [];
    const trimmed = raw.trim();
    if (trimmed.startsWith("[")) {
      try {
        const parsed = JSON.parse(trimmed);
        if (Array.isArray(parsed)) items = parsed.filter((s) => typeof s === "string");
      } catch {
        items = [];
      }
    } else {
      items = trimmed.split("|");
    }
    return items.map((s) => s.trim()).filter(Boolean).slice(0, 6);
  }

  /** "#fff" or "#111": whichever reads better on the given CSS colour. */
  function contrastText(color, container) {
    const probe = document.createElement("span");
    probe.style.setProperty("color", color, "important");
    probe.style.setProperty("display", "none", "important");
    container.append(probe);
    const rgb = getComputedStyle(probe).color.match(/[\d.]+/g) || ["37", "99", "235"];
    probe.remove();
    const [r, g, b] = rgb.slice(0, 3).map((v) => {
      const c = Number(v) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    const luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    return luminance > 0.4 ? "#111111" : "#ffffff";
  }

  function safeStorage() {
    try {
      const storage = window.localStorage;
      const key = "__ragsite_probe__";
      storage.setItem(key, "1");
      storage.removeItem(key);
      return storage;
    } catch {
      const memory = new Map(); // storage blocked (privacy mode): keep state for this page only
      return {
        getItem: (k) => (memory.has(k) ? memory.get(k) : null),
        setItem: (k, v) => memory.set(k, String(v)),
        removeItem: (k) => memory.delete(k),
      };
    }
  }

  // --- Styles ----------------------------------------------------------------------
  // px units only: rem would follow the host page's root font size.

  const STYLES = `
:host {
  all: initial !important;
  display: block !important;
  position: fixed !important;
  inset: auto !important;
  top: 0 !important;
  left: 0 !important;
  width: 0 !important;
  height: 0 !important;
  margin: 0 !important;
  padding: 0 !important;
  border: 0 !important;
  overflow: visible !important;
  visibility: visible !important;
  opacity: 1 !important;
  transform: none !important;
  filter: none !important;
  clip-path: none !important;
  pointer-events: auto !important;
  z-index: 2147483000 !important;
  contain: none !important;
}
.root {
  --rs-bg: #ffffff;
  --rs-fg: #1f2328;
  --rs-muted: #59636e;
  --rs-border: #d1d9e0;
  --rs-surface: #f6f8fa;
  --rs-user: color-mix(in srgb, var(--rs-accent) 10%, #ffffff);
  --rs-note: #fff8e6;
  --rs-note-fg: #6b4e00;
  --rs-error: #fff0f0;
  --rs-error-fg: #a1151b;
  --rs-shadow: 0 12px 40px rgba(15, 23, 42, .22), 0 2px 8px rgba(15, 23, 42, .12);
  --rs-focus: var(--rs-accent);
  font: 400 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--rs-fg);
  letter-spacing: normal;
  text-align: start;
  text-transform: none;
  -webkit-font-smoothing: antialiased;
}
@media (prefers-color-scheme: dark) {
  .root {
    --rs-bg: #161b22;
    --rs-fg: #e6edf3;
    --rs-muted: #9198a1;
    --rs-border: #3d444d;
    --rs-surface: #0d1117;
    --rs-user: color-mix(in srgb, var(--rs-accent) 22%, #161b22);
    --rs-note: #2b2410;
    --rs-note-fg: #f0d78c;
    --rs-error: #2d1416;
    --rs-error-fg: #ffb3b3;
    --rs-shadow: 0 12px 40px rgba(0, 0, 0, .55), 0 2px 8px rgba(0, 0, 0, .4);
    --rs-focus: color-mix(in srgb, var(--rs-accent) 70%, #ffffff);
  }
}
*, *::before, *::after { box-sizing: border-box; }
[hidden] { display: none !important; }
button, textarea { font: inherit; color: inherit; letter-spacing: inherit; }
button { cursor: pointer; }
:focus { outline: none; }
:focus-visible { outline: 2px solid var(--rs-focus); outline-offset: 2px; }
svg { fill: none; stroke: currentColor; stroke-width: 2; stroke-linecap: round; stroke-linejoin: round; flex: none; }
a { color: var(--rs-link, var(--rs-accent)); }
@media (prefers-color-scheme: dark) { a { color: var(--rs-focus); } }
.sr-only {
  position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0;
  overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0;
}

.launcher {
  position: fixed; bottom: 20px; right: 20px;
  display: inline-flex; align-items: center; gap: 8px;
  height: 48px; padding: 0 20px 0 16px; border: 0; border-radius: 24px;
  background: var(--rs-accent); color: var(--rs-on-accent);
  font-weight: 600; font-size: 15px; line-height: 1;
  box-shadow: var(--rs-shadow);
  transition: transform .15s ease, box-shadow .15s ease;
}
.launcher:hover { transform: translateY(-1px); }
.launcher svg { width: 20px; height: 20px; }
.left .launcher { right: auto; left: 20px; }

.panel {
  position: fixed; bottom: 84px; right: 20px;
  width: 400px; max-width: calc(100vw - 40px);
  height: 620px; max-height: calc(100vh - 108px);
  display: flex; flex-direction: column;
  background: var(--rs-bg); color: var(--rs-fg);
  border: 1px solid var(--rs-border); border-radius: 16px;
  box-shadow: var(--rs-shadow);
  overflow: hidden;
  animation: rs-in .18s ease-out;
}
.left .panel { right: auto; left: 20px; }
@keyframes rs-in { from { opacity: 0; transform: translateY(8px) scale(.98); } to { opacity: 1; transform: none; } }

.header {
  display: flex; align-items: center; gap: 4px;
  padding: 10px 8px 10px 16px;
  border-bottom: 1px solid var(--rs-border);
  background: var(--rs-bg);
}
.header h2 { flex: 1; margin: 0; font-size: 15px; font-weight: 650; line-height: 1.3; color: var(--rs-fg); overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.icon-btn {
  display: inline-flex; align-items: center; justify-content: center; gap: 6px;
  min-width: 36px; height: 36px; padding: 0 8px; border: 0; border-radius: 8px;
  background: transparent; color: var(--rs-muted); font-size: 13px;
}
.icon-btn:hover { background: var(--rs-surface); color: var(--rs-fg); }

.log { position: relative; flex: 1; overflow-y: auto; padding: 16px; overscroll-behavior: contain; }
.welcome { color: var(--rs-muted); margin: 4px 0 12px; }
.starters-label { margin: 16px 0 8px; font-size: 12px; font-weight: 600; text-transform: uppercase; letter-spacing: .04em; color: var(--rs-muted); }
.chips { display: flex; flex-wrap: wrap; gap: 8px; margin: 0; padding: 0; list-style: none; }
.chip {
  display: inline-block; padding: 7px 12px; border-radius: 16px; text-align: start;
  border: 1px solid var(--rs-border); background: var(--rs-bg); color: var(--rs-fg);
  font-size: 13px; line-height: 1.35;
}
.chip:hover { border-color: var(--rs-accent); background: var(--rs-surface); }

.turn { margin: 0 0 18px; }
.user {
  width: fit-content; max-width: calc(100% - 36px); margin-left: auto;
  padding: 9px 13px; border-radius: 14px 14px 4px 14px;
  background: var(--rs-user); white-space: pre-wrap; overflow-wrap: anywhere;
}
.passage {
  display: block; margin: 0 0 6px; padding: 2px 0 2px 8px;
  border-left: 3px solid var(--rs-accent); color: var(--rs-muted); font-size: 12.5px;
  white-space: normal;
}
.passage b { display: block; font-size: 11px; text-transform: uppercase; letter-spacing: .04em; font-weight: 600; }
.label { margin: 0 0 6px; font-size: 12px; font-weight: 600; color: var(--rs-muted); }

.sources { margin: 0 0 10px; padding: 8px 10px; border: 1px solid var(--rs-border); border-radius: 10px; background: var(--rs-surface); }
.sources h3 { margin: 0 0 4px; font-size: 11px; font-weight: 650; text-transform: uppercase; letter-spacing: .05em; color: var(--rs-muted); }
.sources ol { margin: 0; padding: 0; list-style: none; counter-reset: none; }
.sources li { display: flex; gap: 8px; align-items: baseline; margin: 2px 0; font-size: 13px; line-height: 1.35; border-radius: 6px; }
.sources li:focus { outline: 2px solid var(--rs-focus); outline-offset: 1px; }
.sources .num {
  flex: none; display: inline-flex; align-items: center; justify-content: center;
  min-width: 18px; height: 18px; padding: 0 4px; border-radius: 9px;
  background: var(--rs-accent); color: var(--rs-on-accent); font-size: 11px; font-weight: 700;
}
.sources a, .sources .nolink { min-width: 0; color: var(--rs-fg); text-decoration: none; overflow-wrap: anywhere; }
.sources a:hover .src-title { text-decoration: underline; }
.src-title { font-weight: 600; }
.src-heading { color: var(--rs-muted); }

.answer { overflow-wrap: anywhere; }
.answer > :first-child { margin-top: 0; }
.answer > :last-child { margin-bottom: 0; }
.answer p, .answer ul, .answer ol, .answer pre, .answer blockquote { margin: 0 0 10px; }
.answer ul, .answer ol { padding-left: 22px; }
.answer li { margin: 2px 0; }
.answer li > p { margin: 0 0 4px; }
.answer h3, .answer h4, .answer h5, .answer h6 { margin: 14px 0 6px; font-size: 14px; font-weight: 700; line-height: 1.35; }
.answer h3 { font-size: 15px; }
.answer code { font: 12.5px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--rs-surface); border: 1px solid var(--rs-border); border-radius: 4px; padding: 0 4px; }
.answer pre { padding: 10px 12px; background: var(--rs-surface); border: 1px solid var(--rs-border); border-radius: 8px; overflow-x: auto; }
.answer pre code { border: 0; padding: 0; background: none; white-space: pre; }
.answer blockquote { padding: 0 0 0 10px; border-left: 3px solid var(--rs-border); color: var(--rs-muted); }
.answer hr { border: 0; border-top: 1px solid var(--rs-border); margin: 12px 0; }
.answer a.cite {
  display: inline-flex; align-items: center; justify-content: center;
  min-width: 17px; height: 17px; padding: 0 4px; margin: 0 1px; border-radius: 9px;
  position: relative; top: -2px;
  background: color-mix(in srgb, var(--rs-accent) 14%, transparent);
  color: var(--rs-fg); font-size: 11px; font-weight: 700; line-height: 1; text-decoration: none;
}
.answer a.cite:hover { background: var(--rs-accent); color: var(--rs-on-accent); }
.streaming .answer::after {
  content: ""; display: inline-block; width: 7px; height: 15px; margin-left: 2px;
  vertical-align: text-bottom; background: var(--rs-accent); border-radius: 1px;
  animation: rs-blink 1s steps(2, start) infinite;
}
@keyframes rs-blink { to { visibility: hidden; } }
.status { display: flex; align-items: center; gap: 8px; color: var(--rs-muted); font-size: 13px; }
.dots { display: inline-flex; gap: 3px; }
.dots i { width: 5px; height: 5px; border-radius: 50%; background: var(--rs-muted); animation: rs-dot 1.2s infinite ease-in-out; }
.dots i:nth-child(2) { animation-delay: .15s; }
.dots i:nth-child(3) { animation-delay: .3s; }
@keyframes rs-dot { 0%, 80%, 100% { opacity: .25; } 40% { opacity: 1; } }

.note, .error { margin: 10px 0 0; padding: 7px 10px; border-radius: 8px; font-size: 12.5px; line-height: 1.4; }
.note { background: var(--rs-note); color: var(--rs-note-fg); }
.error { background: var(--rs-error); color: var(--rs-error-fg); }
.muted-note { margin: 8px 0 0; font-size: 12.5px; color: var(--rs-muted); font-style: italic; }
.followups { margin: 12px 0 0; }
.followups .chips { flex-direction: column; align-items: flex-start; gap: 6px; }
.actions { display: flex; align-items: center; gap: 2px; margin: 8px 0 0; }
.actions .icon-btn { min-width: 32px; height: 32px; }
.actions .icon-btn[aria-pressed="true"] { color: var(--rs-accent); background: var(--rs-surface); }
@media (prefers-color-scheme: dark) { .actions .icon-btn[aria-pressed="true"] { color: var(--rs-focus); } }
.actions .feedback-msg { margin-left: 6px; font-size: 12px; color: var(--rs-muted); }

.composer { border-top: 1px solid var(--rs-border); padding: 10px 12px 12px; background: var(--rs-bg); }
.composer .error { margin: 0 0 8px; }
.row {
  display: flex; align-items: flex-end; gap: 8px;
  padding: 6px 6px 6px 12px; border: 1px solid var(--rs-border); border-radius: 12px; background: var(--rs-bg);
}
.row:focus-within { border-color: var(--rs-accent); box-shadow: 0 0 0 3px color-mix(in srgb, var(--rs-accent) 22%, transparent); }
textarea {
  flex: 1; min-height: 24px; max-height: 140px; margin: 0; padding: 6px 0; border: 0; resize: none;
  background: transparent; font-size: 14px; line-height: 1.45; overflow-y: auto;
}
textarea:focus-visible { outline: none; }
textarea::placeholder { color: var(--rs-muted); opacity: 1; }
.send, .stop {
  display: inline-flex; align-items: center; justify-content: center; flex: none;
  width: 36px; height: 36px; border: 0; border-radius: 9px;
  background: var(--rs-accent); color: var(--rs-on-accent);
}
.send:disabled { opacity: .45; cursor: default; }
.stop { background: var(--rs-fg); color: var(--rs-bg); }
.footer-hint { margin: 6px 2px 0; font-size: 11px; color: var(--rs-muted); }

.ask-selection {
  position: fixed; display: inline-flex; align-items: center; gap: 6px;
  padding: 7px 12px; border: 0; border-radius: 18px;
  background: var(--rs-fg); color: var(--rs-bg); font-size: 13px; font-weight: 600; line-height: 1.2;
  box-shadow: var(--rs-shadow);
  animation: rs-in .12s ease-out;
}
.ask-selection svg { width: 15px; height: 15px; }

@media (max-width: 480px) {
  .panel {
    inset: 0; width: 100%; max-width: none; height: 100%; max-height: none;
    border: 0; border-radius: 0;
  }
  .left .panel { left: 0; }
  .open .launcher { display: none; }
  .new-label { display: none; }
  .launcher { bottom: 16px; right: 16px; }
  .left .launcher { left: 16px; }
  textarea { font-size: 16px; } /* no zoom-on-focus on iOS */
}
@media (prefers-reduced-motion: reduce) {
  *, *::before, *::after { animation: none !important; transition: none !important; }
}
`;

  // --- The widget ------------------------------------------------------------------

  function findScript() {
    if (document.currentScript) return document.currentScript;
    const scripts = document.querySelectorAll('script[src*="ragsite/widget"]');
    return scripts[scripts.length - 1] || null;
  }

  function readConfig(script) {
    const data = (script && script.dataset) || {};
    let scriptOrigin = window.location.origin;
    try {
      if (script && script.src) scriptOrigin = new URL(script.src, document.baseURI).origin;
    } catch {
      /* keep the page origin */
    }
    let api = scriptOrigin;
    if (data.api && data.api.trim()) {
      try {
        api = new URL(data.api.trim(), document.baseURI).href;
      } catch {
        api = scriptOrigin;
      }
    }
    api = api.replace(/\/+$/, "");
    const wanted = (data.lang || document.documentElement.lang || "en").toLowerCase().split(/[-_]/)[0];
    const lang = STRINGS[wanted] ? wanted : "en";
    const strings = { ...STRINGS.en, ...STRINGS[lang] };
    const accent = data.accent && window.CSS && CSS.supports("color", data.accent) ? data.accent : "#2563eb";
    return {
      api,
      lang,
      strings,
      title: (data.title || "").trim() || strings.title,
      placeholder: (data.placeholder || "").trim() || strings.placeholder,
      accent,
      position: data.position === "bottom-left" ? "bottom-left" : "bottom-right",
      starters: parseStarters(data.starters),
    };
  }

  class RagsiteChat extends HTMLElement {
    constructor() {
      super();
      this.config = null;
      this.turns = [];
      this.sessionId = null;
      this.controller = null;
      this.streaming = false;
      this.cooldownUntil = 0;
      this.stats = { tokens: 0, renders: 0, requests: 0 };
      this.views = new Map(); // assistant turn -> its DOM references
      this.anchor = null; // the newest question's bubble: auto-scroll stops there
      this.lastAutoScroll = 0;
      this.storage = safeStorage();
    }

    /** Build the UI once; called by mount() after the config is set. */
    setup(config) {
      this.config = config;
      const t = config.strings;
      this.storeKey = `ragsite:v${STORE_VERSION}:${config.api}`;
      const shadow = this.attachShadow({ mode: "open" });
      const style = document.createElement("style");
      style.textContent = STYLES;
      shadow.append(style);

      this.root = el("div", {
        class: `root ${config.position === "bottom-left" ? "left" : "right"}`,
        lang: config.lang,
        dir: "ltr",
      });
      shadow.append(this.root);
      this.root.style.setProperty("--rs-accent", config.accent);
      this.root.style.setProperty("--rs-on-accent", contrastText(config.accent, this.root));

      this.launcher = el(
        "button",
        {
          class: "launcher",
          type: "button",
          "aria-haspopup": "dialog",
          "aria-expanded": "false",
          "aria-controls": "ragsite-panel",
          onclick: () => (this.isOpen() ? this.close() : this.open()),
        },
        [svgIcon(ICONS.chat), el("span", { text: t.launcher })],
      );

      this.titleEl = el("h2", { id: "ragsite-title", text: config.title });
      const header = el("div", { class: "header" }, [
        this.titleEl,
        el(
          "button",
          { class: "icon-btn", type: "button", title: t.newChat, "aria-label": t.newChat, onclick: () => this.newConversation() },
          [svgIcon(ICONS.plus), el("span", { text: t.newChat, class: "new-label" })],
        ),
        el(
          "button",
          { class: "icon-btn close", type: "button", title: t.close, "aria-label": t.close, onclick: () => this.close() },
          [svgIcon(ICONS.close)],
        ),
      ]);

      // role="log" is an implicit polite live region; aria-busy on it while an answer
      // streams makes screen readers wait and read the finished answer once.
      this.log = el("div", {
        class: "log",
        role: "log",
        "aria-live": "polite",
        "aria-relevant": "additions text",
        "aria-busy": "false",
        "aria-label": t.title,
      });

      this.input = el("textarea", {
        rows: "1",
        maxlength: String(MAX_MESSAGE),
        placeholder: config.placeholder,
        "aria-label": t.inputLabel,
        enterkeyhint: "send",
      });
      this.input.addEventListener("keydown", (event) => {
        if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
          event.preventDefault();
          this.submit();
        }
      });
      this.input.addEventListener("input", () => this.autosize());

      this.sendBtn = el("button", { class: "send", type: "submit", title: t.send, "aria-label": t.send }, [svgIcon(ICONS.send)]);
      this.stopBtn = el(
        "button",
        { class: "stop", type: "button", title: t.stop, "aria-label": t.stop, hidden: true, onclick: () => this.stop() },
        [svgIcon(ICONS.stop)],
      );
      this.formError = el("p", { class: "error", role: "alert", hidden: true });
      const form = el("form", { class: "composer", novalidate: true }, [
        this.formError,
        el("div", { class: "row" }, [this.input, this.sendBtn, this.stopBtn]),
      ]);
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        this.submit();
      });

      this.panel = el(
        "div",
        {
          class: "panel",
          id: "ragsite-panel",
          role: "dialog",
          "aria-modal": "false",
          "aria-label": config.title,
          hidden: true,
        },
        [header, this.log, form],
      );
      this.panel.addEventListener("keydown", (event) => {
        if (event.key === "Escape") {
          event.stopPropagation();
          this.close();
        }
      });

      this.selectionBtn = el(
        "button",
        { class: "ask-selection", type: "button", hidden: true },
        [svgIcon(ICONS.quote), el("span", { text: t.askSelection })],
      );
      // Keep the page selection alive while the button is pressed.
      this.selectionBtn.addEventListener("mousedown", (event) => event.preventDefault());
      this.selectionBtn.addEventListener("click", () => this.askAboutSelection());

      this.root.append(this.launcher, this.panel, this.selectionBtn);

      this.restore();
      this.renderAll();
      this.watchSelection();
      window.addEventListener("pagehide", () => this.persist());
    }

    // -- open / close ------------------------------------------------------------------

    isOpen() {
      return !this.panel.hidden;
    }

    open() {
      if (!this.isOpen()) {
        // Focus returns on close to what the reader was on (the launcher by default).
        const previous = document.activeElement;
        this.returnFocus = previous && previous !== this && previous !== document.body ? previous : null;
        this.panel.hidden = false;
        this.root.classList.add("open");
        this.launcher.setAttribute("aria-expanded", "true");
        this.scrollToEnd(true);
      }
      this.input.focus();
    }

    close() {
      if (!this.isOpen()) return;
      this.panel.hidden = true;
      this.root.classList.remove("open");
      this.launcher.setAttribute("aria-expanded", "false");
      const target = this.returnFocus && this.returnFocus.isConnected ? this.returnFocus : this.launcher;
      this.returnFocus = null;
      target.focus();
    }

    // -- state & persistence -----------------------------------------------------------

    restore() {
      try {
        const saved = JSON.parse(this.storage.getItem(this.storeKey) || "null");
        if (saved && saved.v === STORE_VERSION) {
          this.sessionId = typeof saved.session_id === "string" ? saved.session_id : null;
          this.turns = Array.isArray(saved.turns) ? saved.turns.filter((x) => x && typeof x === "object") : [];
          for (const turn of this.turns) {
            if (turn.status === "streaming") turn.status = "stopped";
          }
        }
      } catch {
        this.turns = [];
      }
    }

    persist() {
      const turns = this.turns.slice(-KEPT_ENTRIES).map((turn) => {
        if (turn.role !== "assistant") return turn;
        const copy = { ...turn, status: turn.status === "streaming" ? "stopped" : turn.status };
        copy.sources = (turn.sources || []).map((s) => ({ ...s, snippet: (s.snippet || "").slice(0, 300) }));
        return copy;
      });
      try {
        this.storage.setItem(
          this.storeKey,
          JSON.stringify({ v: STORE_VERSION, session_id: this.sessionId, turns }),
        );
      } catch {
        /* storage full or blocked: the conversation simply won't survive a reload */
      }
    }

    newConversation() {
      this.stop();
      this.turns = [];
      this.sessionId = null;
      try {
        this.storage.removeItem(this.storeKey);
      } catch {
        /* ignore */
      }
      this.showFormError("");
      this.renderAll();
      this.input.focus();
    }

    // -- rendering ---------------------------------------------------------------------

    renderAll() {
      this.views.clear();
      this.anchor = null;
      this.lastAutoScroll = 0;
      this.log.replaceChildren();
      if (!this.turns.length) {
        this.log.append(this.renderWelcome());
        return;
      }
      for (const turn of this.turns) {
        const node = this.renderTurn(turn);
        if (turn.role === "user") this.anchor = node;
        this.log.append(node);
      }
    }

    renderWelcome() {
      const t = this.config.strings;
      const box = el("div", { class: "intro" }, [el("p", { class: "welcome", text: t.welcome })]);
      if (this.config.starters.length) {
        box.append(el("p", { class: "starters-label", text: t.tryAsking, id: "ragsite-starters" }));
        box.append(
          el(
            "ul",
            { class: "chips starters", "aria-labelledby": "ragsite-starters" },
            this.config.starters.map((q) =>
              el("li", null, [el("button", { class: "chip", type: "button", text: q, onclick: () => this.ask(q) })]),
            ),
          ),
        );
      }
      return box;
    }

    renderTurn(turn) {
      const t = this.config.strings;
      if (turn.role === "user") {
        const bubble = el("div", { class: "turn user" });
        bubble.append(el("span", { class: "sr-only", text: `${t.you}: ` }));
        if (turn.selection) {
          const excerpt = turn.selection.length > 220 ? `${turn.selection.slice(0, 220)}\u2026` : turn.selection;
          bubble.append(el("span", { class: "passage" }, [el("b", { text: t.aboutPassage }), `\u201c${excerpt}\u201d`]));
        }
        bubble.append(document.createTextNode(turn.text));
        return bubble;
      }
      const view = {
        root: el("div", { class: "turn assistant" }),
        sources: el("div", { class: "sources", hidden: true }),
        status: el("div", { class: "status", hidden: true }, [
          el("span", { class: "dots", "aria-hidden": "true" }, [el("i"), el("i"), el("i")]),
          el("span", { text: t.searching }),
        ]),
        answer: el("div", { class: "answer" }),
        extras: el("div", { class: "extras" }),
      };
      view.root.append(el("span", { class: "sr-only", text: `${t.assistant}: ` }), view.sources, view.status, view.answer, view.extras);
      this.views.set(turn, view);
      this.updateSources(turn);
      this.updateAnswer(turn);
      this.updateExtras(turn);
      return view.root;
    }

    updateSources(turn) {
      const view = this.views.get(turn);
      if (!view) return;
      const sources = turn.sources || [];
      view.sources.hidden = !sources.length;
      if (!sources.length) return;
      const t = this.config.strings;
      view.sourceItems = new Map();
      const items = sources.map((source) => {
        const tip = [source.path, source.snippet].filter(Boolean).join("\n\n");
        const label = [
          el("span", { class: "src-title", text: source.title || source.path || `${t.source} ${source.n}` }),
          source.heading ? el("span", { class: "src-heading", text: ` \u203a ${source.heading}` }) : null,
        ];
        const href = source.url ? safeHref(source.url) : null;
        const body = href
          ? el("a", { href, target: "_blank", rel: "noopener noreferrer", title: tip || null }, label)
          : el("span", { class: "nolink", title: tip || null }, label);
        const item = el("li", { tabindex: "-1", "data-n": source.n }, [
          el("span", { class: "num", "aria-hidden": "true", text: String(source.n) }),
          el("span", { class: "sr-only", text: `${t.source} ${source.n}: ` }),
          body,
        ]);
        view.sourceItems.set(Number(source.n), item);
        return item;
      });
      view.sources.replaceChildren(el("h3", { text: t.sources }), el("ol", null, items));
    }

    /** A node for citation [n], or null when source n does not exist. */
    citation(turn, n) {
      const source = (turn.sources || []).find((s) => Number(s.n) === n);
      if (!source) return null;
      const t = this.config.strings;
      const name = `${t.source} ${n}: ${source.title || source.path || ""}${source.heading ? ` \u203a ${source.heading}` : ""}`;
      const href = source.url ? safeHref(source.url) : null;
      if (href) {
        return el("a", { class: "cite", href, target: "_blank", rel: "noopener noreferrer", title: name, "aria-label": name, "data-n": n, text: String(n) });
      }
      // No published URL: jump to the source entry inside the panel instead.
      return el("a", {
        class: "cite",
        href: "#",
        title: name,
        "aria-label": name,
        "data-n": n,
        text: String(n),
        onclick: (event) => {
          event.preventDefault();
          const view = this.views.get(turn);
          const item = view && view.sourceItems && view.sourceItems.get(n);
          if (item) {
            item.scrollIntoView({ block: "nearest" });
            item.focus();
          }
        },
      });
    }

    updateAnswer(turn) {
      const view = this.views.get(turn);
      if (!view) return;
      const waiting = turn.status === "streaming" && !turn.text;
      view.status.hidden = !waiting;
      view.root.classList.toggle("streaming", turn.status === "streaming" && Boolean(turn.text));
      view.answer.hidden = !turn.text;
      view.answer.replaceChildren(renderMarkdown(turn.text || "", { cite: (n) => this.citation(turn, n) }));
      this.stats.renders += 1;
    }

    scheduleAnswer(turn) {
      if (this.renderPending) return;
      this.renderPending = true;
      const run = () => {
        this.renderPending = false;
        this.updateAnswer(turn);
        this.scrollToEnd();
      };
      // requestAnimationFrame batches a burst of tokens into one render per frame;
      // a timer covers background tabs, where frames do not run.
      if (document.visibilityState === "visible" && window.requestAnimationFrame) window.requestAnimationFrame(run);
      else setTimeout(run, 50);
    }

    updateExtras(turn) {
      const view = this.views.get(turn);
      if (!view) return;
      const t = this.config.strings;
      const parts = [];
      if (turn.status === "stopped") parts.push(el("p", { class: "muted-note", text: t.stopped }));
      if (turn.error) parts.push(el("p", { class: "error", role: "alert", text: turn.error }));
      if (turn.status === "done") {
        if (turn.mode === "extractive") parts.push(el("p", { class: "note", text: t.extractive }));
        if (turn.uncertain) parts.push(el("p", { class: "note uncertain", text: t.uncertain }));
        const followUps = (turn.follow_ups || []).filter((q) => typeof q === "string" && q.trim()).slice(0, 4);
        if (followUps.length) {
          parts.push(
            el("div", { class: "followups" }, [
              el("p", { class: "label", text: t.followUps }),
              el(
                "ul",
                { class: "chips", "aria-label": t.followUps },
                followUps.map((q) =>
                  el("li", null, [el("button", { class: "chip followup", type: "button", text: q, onclick: () => this.ask(q) })]),
                ),
              ),
            ]),
          );
        }
      }
      if (turn.text && turn.status !== "streaming") parts.push(this.renderActions(turn));
      view.extras.replaceChildren(...parts);
    }

    renderActions(turn) {
      const t = this.config.strings;
      const message = el("span", { class: "feedback-msg", role: "status" });
      const up = el("button", { class: "icon-btn thumb up", type: "button", title: t.helpful, "aria-label": t.helpful, "aria-pressed": String(turn.rating === "up") }, [svgIcon(ICONS.up)]);
      const down = el("button", { class: "icon-btn thumb down", type: "button", title: t.notHelpful, "aria-label": t.notHelpful, "aria-pressed": String(turn.rating === "down") }, [svgIcon(ICONS.down)]);
      const copy = el("button", { class: "icon-btn copy", type: "button", title: t.copy, "aria-label": t.copy }, [svgIcon(ICONS.copy)]);
      const rate = async (rating) => {
        const ok = await this.sendFeedback(turn, rating);
        if (ok) {
          turn.rating = rating;
          up.setAttribute("aria-pressed", String(rating === "up"));
          down.setAttribute("aria-pressed", String(rating === "down"));
          this.persist();
        }
        message.textContent = ok ? t.feedbackThanks : t.feedbackFailed;
      };
      up.addEventListener("click", () => rate("up"));
      down.addEventListener("click", () => rate("down"));
      copy.addEventListener("click", async () => {
        const ok = await this.copyText(turn.text);
        message.textContent = ok ? t.copied : t.copyFailed;
      });
      const buttons = turn.message_id ? [up, down, copy] : [copy];
      return el("div", { class: "actions" }, [...buttons, message]);
    }

    /**
     * Follow the growing answer, but never scroll the current question out of view at
     * the top: a long answer is then read from its start. A reader who scrolled away
     * is left alone.
     */
    scrollToEnd(force = false) {
      const log = this.log;
      const bottom = log.scrollHeight - log.clientHeight;
      const anchor = this.anchor && this.anchor.isConnected ? this.anchor.offsetTop - 12 : bottom;
      const target = Math.max(0, Math.min(bottom, anchor));
      const following = log.scrollTop >= this.lastAutoScroll - 4;
      if (force || (following && target > log.scrollTop)) {
        log.scrollTop = target;
        this.lastAutoScroll = log.scrollTop;
      }
    }

    autosize() {
      this.input.style.height = "auto";
      this.input.style.height = `${Math.min(this.input.scrollHeight, 140)}px`;
    }

    showFormError(text) {
      this.formError.textContent = text;
      this.formError.hidden = !text;
    }

    setStreaming(on) {
      this.streaming = on;
      this.sendBtn.hidden = on;
      this.stopBtn.hidden = !on;
      this.log.setAttribute("aria-busy", String(on));
    }

    // -- asking --------------------------------------------------------------------------

    submit() {
      const text = this.input.value.trim();
      if (!text || this.streaming) return;
      if (this.ask(text)) {
        this.input.value = "";
        this.autosize();
      }
    }

    /** Send a question (optionally about a selected passage). Returns false if it was not sent. */
    ask(question, selection) {
      const t = this.config.strings;
      const message = String(question || "").trim().slice(0, MAX_MESSAGE);
      if (!message || this.streaming) return false;
      const wait = Math.ceil((this.cooldownUntil - Date.now()) / 1000);
      if (wait > 0) {
        this.showFormError(format(t.errRate, { s: wait }));
        return false;
      }
      this.showFormError("");
      if (!this.isOpen()) this.open();
      if (!this.turns.length) this.log.replaceChildren(); // drop the welcome

      const userTurn = { role: "user", text: message };
      if (selection) userTurn.selection = selection;
      const turn = { role: "assistant", text: "", sources: [], status: "streaming" };
      this.turns.push(userTurn, turn);
      this.anchor = this.renderTurn(userTurn);
      this.log.append(this.anchor, this.renderTurn(turn));
      this.scrollToEnd(true);
      this.stream(turn, message, selection);
      return true;
    }

    stop() {
      if (this.controller) this.controller.abort();
    }

    async stream(turn, message, selection) {
      const t = this.config.strings;
      const controller = new AbortController();
      this.controller = controller;
      this.setStreaming(true);
      this.stats.requests += 1;
      const body = { message, stream: true };
      if (this.sessionId) body.session_id = this.sessionId;
      if (selection) body.selection = selection;
      let finished = false;
      try {
        const response = await fetch(`${this.config.api}/api/chat`, {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
          body: JSON.stringify(body),
          signal: controller.signal,
          credentials: "omit",
          cache: "no-store",
        });
        if (!response.ok) {
          turn.error = await this.errorMessage(response);
          finished = true;
        } else if ((response.headers.get("Content-Type") || "").includes("application/json")) {
          // A server answering without a stream: one object with meta + sources + done merged.
          const data = await response.json();
          this.handleEvent(turn, "meta", data);
          this.handleEvent(turn, "sources", data);
          this.handleEvent(turn, "done", data);
          finished = true;
        } else {
          finished = await this.readStream(turn, response.body);
        }
        if (!finished) turn.error = t.errCutOff;
      } catch (error) {
        if (controller.signal.aborted || (error && error.name === "AbortError")) {
          turn.status = "stopped";
        } else {
          turn.error = t.errNetwork;
        }
      } finally {
        if (turn.status === "streaming") turn.status = turn.error ? "error" : "done";
        if (this.controller === controller) this.controller = null;
        this.renderPending = false;
        const focused = this.shadowRoot.activeElement;
        this.updateAnswer(turn);
        this.updateExtras(turn);
        this.setStreaming(false);
        this.persist();
        this.scrollToEnd();
        // The Stop button (or a starter chip) just disappeared: keep focus in the panel.
        if (this.isOpen() && (focused === null || focused === this.stopBtn)) this.input.focus();
      }
    }

    /** Read SSE events until done/error. Returns true when the answer ended properly. */
    async readStream(turn, body) {
      const reader = body.getReader();
      const decoder = new TextDecoder();
      const parser = new SSEParser();
      for (;;) {
        const { value, done } = await reader.read();
        const events = done ? parser.push(decoder.decode(), true) : parser.push(decoder.decode(value, { stream: true }));
        for (const event of events) {
          let data;
          try {
            data = JSON.parse(event.data);
          } catch {
            continue; // not ours: ignore rather than break the answer
          }
          if (this.handleEvent(turn, event.event, data)) {
            // The answer is complete; let the server end the response itself (it stores
            // the message as it closes) instead of hanging up on it.
            if (!done) this.drain(reader);
            return true;
          }
        }
        if (done) return false;
      }
    }

    /** Read what is left of a response, ignoring it. */
    async drain(reader) {
      try {
        while (!(await reader.read()).done) {
          /* ignore anything after done/error */
        }
      } catch {
        /* the connection closed */
      }
    }

    /** Apply one event to the turn. Returns true when it ends the answer. */
    handleEvent(turn, name, data) {
      if (!data || typeof data !== "object") return false;
      switch (name) {
        case "meta":
          if (typeof data.session_id === "string" && data.session_id) this.sessionId = data.session_id;
          if (data.message_id !== undefined && data.message_id !== null) turn.message_id = String(data.message_id);
          this.persist();
          return false;
        case "sources":
          turn.sources = Array.isArray(data.sources)
            ? data.sources.filter((s) => s && typeof s === "object").map((s, i) => ({
                n: Number(s.n) || i + 1,
                title: typeof s.title === "string" ? s.title : "",
                heading: typeof s.heading === "string" ? s.heading : "",
                url: typeof s.url === "string" ? s.url : null,
                path: typeof s.path === "string" ? s.path : "",
                snippet: typeof s.snippet === "string" ? s.snippet : "",
              }))
            : [];
          this.updateSources(turn);
          this.scrollToEnd();
          return false;
        case "token":
          if (typeof data.text === "string" && data.text) {
            turn.text += data.text;
            this.stats.tokens += 1;
            this.scheduleAnswer(turn);
          }
          return false;
        case "done":
          if (typeof data.answer === "string") turn.text = data.answer;
          turn.citations = Array.isArray(data.citations) ? data.citations : [];
          turn.follow_ups = Array.isArray(data.follow_ups) ? data.follow_ups : [];
          turn.uncertain = Boolean(data.uncertain);
          turn.mode = data.mode === "extractive" ? "extractive" : "llm";
          turn.status = "done";
          return true;
        case "error":
          turn.error = typeof data.message === "string" && data.message ? data.message : this.config.strings.errAnswer;
          turn.status = "error";
          return true;
        default:
          return false;
      }
    }

    /** A sentence for a non-2xx response: Retry-After for 429, the API's message otherwise. */
    async errorMessage(response) {
      const t = this.config.strings;
      let apiMessage = "";
      try {
        const payload = await response.json();
        if (payload && payload.error && typeof payload.error.message === "string") apiMessage = payload.error.message;
      } catch {
        /* not JSON */
      }
      if (response.status === 429) {
        const header = response.headers.get("Retry-After");
        let seconds = Number.parseInt(header || "", 10);
        if (Number.isNaN(seconds) && header) {
          const date = Date.parse(header);
          if (!Number.isNaN(date)) seconds = Math.ceil((date - Date.now()) / 1000);
        }
        if (seconds > 0) {
          this.cooldownUntil = Date.now() + seconds * 1000;
          return format(t.errRate, { s: seconds });
        }
        return t.errRateSoon;
      }
      if (response.status >= 400 && response.status < 500 && apiMessage) return apiMessage;
      return apiMessage ? `${format(t.errServer, { status: response.status })} ${apiMessage}` : format(t.errServer, { status: response.status });
    }

    async sendFeedback(turn, rating) {
      if (!turn.message_id) return false;
      try {
        const response = await fetch(`${this.config.api}/api/feedback`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ message_id: turn.message_id, rating }),
          credentials: "omit",
        });
        return response.ok;
      } catch {
        return false;
      }
    }

    async copyText(text) {
      try {
        if (navigator.clipboard && window.isSecureContext) {
          await navigator.clipboard.writeText(text);
          return true;
        }
      } catch {
        /* fall back below */
      }
      const area = el("textarea", { class: "sr-only", readonly: true, "aria-hidden": "true" });
      area.value = text;
      this.root.append(area);
      area.select();
      let ok = false;
      try {
        ok = document.execCommand("copy");
      } catch {
        ok = false;
      }
      area.remove();
      return ok;
    }

    // -- "Ask about this" ---------------------------------------------------------------

    watchSelection() {
      let timer = null;
      const check = () => {
        clearTimeout(timer);
        timer = setTimeout(() => this.updateSelectionButton(), 120);
      };
      document.addEventListener("mouseup", (event) => {
        if (!event.composedPath().includes(this)) check();
      });
      document.addEventListener("keyup", (event) => {
        if (!event.composedPath().includes(this)) check();
      });
      document.addEventListener("selectionchange", check);
      window.addEventListener("scroll", () => this.hideSelectionButton(), { passive: true, capture: true });
      window.addEventListener("resize", () => this.hideSelectionButton(), { passive: true });
      document.addEventListener("keydown", (event) => {
        if (event.key === "Escape") this.hideSelectionButton();
      });
    }

    /** The page's selected text, when it is a usable question context (else ""). */
    pageSelection() {
      const selection = document.getSelection();
      if (!selection || selection.isCollapsed || !selection.rangeCount) return "";
      // Ignore selections in (or spanning) the widget itself.
      const anchor = selection.anchorNode;
      if (anchor && (anchor === this || this.shadowRoot.contains(anchor))) return "";
      if (selection.getRangeAt(0).intersectsNode(this)) return "";
      const text = selection.toString().trim();
      return text.length > 0 && text.length <= MAX_SELECTION ? text : "";
    }

    updateSelectionButton() {
      const text = this.pageSelection();
      if (!text) {
        this.hideSelectionButton();
        return;
      }
      // The union of the visible line boxes: a triple-click range also ends at the start
      // of the next block, which would stretch the bounding box past the passage.
      const lines = [...document.getSelection().getRangeAt(0).getClientRects()].filter((r) => r.width > 1 && r.height > 0);
      const rect = lines.length
        ? lines.reduce((a, r) => ({
            left: Math.min(a.left, r.left),
            top: Math.min(a.top, r.top),
            right: Math.max(a.right, r.right),
            bottom: Math.max(a.bottom, r.bottom),
          }))
        : null;
      if (rect) {
        rect.width = rect.right - rect.left;
        rect.height = rect.bottom - rect.top;
      }
      if (!rect || (!rect.width && !rect.height)) {
        this.hideSelectionButton();
        return;
      }
      this.pendingSelection = text;
      const button = this.selectionBtn;
      button.hidden = false;
      const width = button.offsetWidth || 140;
      const height = button.offsetHeight || 32;
      const left = Math.max(8, Math.min(rect.left + rect.width / 2 - width / 2, window.innerWidth - width - 8));
      let top = rect.bottom + 8;
      if (top + height > window.innerHeight - 8) top = Math.max(8, rect.top - height - 8);
      button.style.left = `${Math.round(left)}px`;
      button.style.top = `${Math.round(top)}px`;
    }

    hideSelectionButton() {
      this.selectionBtn.hidden = true;
      this.pendingSelection = "";
    }

    askAboutSelection() {
      const text = this.pendingSelection || this.pageSelection();
      this.hideSelectionButton();
      if (!text) return;
      this.open();
      if (this.ask(this.config.strings.explainSelection, text)) {
        const selection = document.getSelection();
        if (selection) selection.removeAllRanges();
      }
    }
  }

  // --- Start --------------------------------------------------------------------------

  const script = findScript();

  function mount() {
    if (document.querySelector(TAG)) return;
    const host = document.createElement(TAG);
    (document.body || document.documentElement).append(host);
    host.setup(readConfig(script));
    const api = {
      open: () => host.open(),
      close: () => host.close(),
      ask: (question, selection) => host.ask(question, selection),
      newConversation: () => host.newConversation(),
    };
    window.ragsiteWidget = Object.freeze(api);
    // Hooks for the browser tests (tests/widget): pure functions and counters only.
    window.__ragsiteTest = Object.freeze({
      renderMarkdown(text, sources) {
        const box = document.createElement("div");
        const turn = { sources: sources || [] };
        box.append(renderMarkdown(text, { cite: (n) => host.citation(turn, n) }));
        return box.innerHTML;
      },
      parseSSE(chunks) {
        const parser = new SSEParser();
        const events = [];
        for (const chunk of [].concat(chunks)) events.push(...parser.push(chunk));
        return events.concat(parser.push("", true));
      },
      stats: () => ({ ...host.stats }),
      host,
    });
  }

  window.customElements.define(TAG, RagsiteChat);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mount, { once: true });
  else mount();
})();
