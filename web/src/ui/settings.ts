// Personal editor settings (theme, font size, key bindings): kept in this browser only, applied at once.
import { h } from "./dom";
import "./settings.css";

export type ThemeChoice = "dark" | "light" | "system";
export type ResolvedTheme = "dark" | "light";
export type KeymapMode = "default" | "vim" | "emacs";

export interface Settings {
  theme: ThemeChoice;
  fontSize: number;
  keymap: KeymapMode;
}

const KEY = "ccl.settings";
export const MIN_FONT = 11;
export const MAX_FONT = 24;
const DEFAULTS: Settings = { theme: "dark", fontSize: 14, keymap: "default" };

const THEMES: [ThemeChoice, string][] = [
  ["dark", "Dark"],
  ["light", "Light"],
  ["system", "Follow the system"],
];
const KEYMAPS: [KeymapMode, string][] = [
  ["default", "Standard"],
  ["vim", "Vim"],
  ["emacs", "Emacs"],
];

const clampFont = (px: number): number => Math.min(MAX_FONT, Math.max(MIN_FONT, Math.round(px)));

/** What is stored, with anything missing or malformed (an older page, a hand edit) replaced by the default. */
export function loadSettings(): Settings {
  let raw: Partial<Record<keyof Settings, unknown>> = {};
  try {
    raw = (JSON.parse(localStorage.getItem(KEY) ?? "{}") as typeof raw) ?? {};
  } catch {
    // Unreadable: the defaults.
  }
  return {
    theme: THEMES.some(([t]) => t === raw.theme) ? (raw.theme as ThemeChoice) : DEFAULTS.theme,
    fontSize: typeof raw.fontSize === "number" && Number.isFinite(raw.fontSize) ? clampFont(raw.fontSize) : DEFAULTS.fontSize,
    keymap: KEYMAPS.some(([k]) => k === raw.keymap) ? (raw.keymap as KeymapMode) : DEFAULTS.keymap,
  };
}

function saveSettings(settings: Settings): void {
  try {
    localStorage.setItem(KEY, JSON.stringify(settings));
  } catch {
    // Storage full or disabled: the choice lasts until the page is closed.
  }
}

const systemDark = (): MediaQueryList => window.matchMedia("(prefers-color-scheme: dark)");

export function resolveTheme(choice: ThemeChoice): ResolvedTheme {
  if (choice === "system") return systemDark().matches ? "dark" : "light";
  return choice;
}

/** Colour the whole page (every route: start, join and session pages) in the chosen theme. */
export function applyPageTheme(theme: ResolvedTheme = resolveTheme(loadSettings().theme)): void {
  document.documentElement.dataset.theme = theme;
  document.querySelector('meta[name="color-scheme"]')?.setAttribute("content", theme);
}

/** Keeps the page themed from the stored choice, following the system's changes when that is the choice. */
export function followStoredTheme(onChange: (theme: ResolvedTheme) => void = () => undefined): void {
  applyPageTheme();
  systemDark().addEventListener("change", () => {
    if (loadSettings().theme !== "system") return;
    const theme = resolveTheme("system");
    applyPageTheme(theme);
    onChange(theme);
  });
}

export interface SettingsTarget {
  setTheme(theme: ResolvedTheme): void;
  setFontSize(px: number): void;
  setKeymap(mode: KeymapMode): Promise<void>;
}

/** The settings button and its menu, driving ``target`` (the editor) and the page. */
export class SettingsMenu {
  readonly el: HTMLElement;
  private settings = loadSettings();
  private readonly button: HTMLButtonElement;
  private readonly menu: HTMLElement;
  private readonly theme: HTMLSelectElement;
  private readonly keymap: HTMLSelectElement;
  private readonly size: HTMLOutputElement;
  private readonly smaller: HTMLButtonElement;
  private readonly larger: HTMLButtonElement;

  constructor(private readonly target: SettingsTarget) {
    this.button = h("button", { class: "button ghost", id: "settings", title: "Editor settings", "aria-expanded": "false", "aria-controls": "settings-menu" }, "⚙");
    this.button.setAttribute("aria-label", "Editor settings");
    this.theme = h("select", { id: "setting-theme" }, ...THEMES.map(([v, label]) => h("option", { value: v }, label)));
    this.keymap = h("select", { id: "setting-keymap" }, ...KEYMAPS.map(([v, label]) => h("option", { value: v }, label)));
    this.size = h("output", { id: "setting-font-size", "aria-live": "polite" });
    this.smaller = h("button", { class: "button small", id: "font-smaller", title: "Smaller (Ctrl+-)", "aria-label": "Smaller font" }, "A−");
    this.larger = h("button", { class: "button small", id: "font-larger", title: "Larger (Ctrl+=)", "aria-label": "Larger font" }, "A+");
    this.menu = h(
      "div",
      { class: "settings-menu", id: "settings-menu", role: "group", "aria-label": "Editor settings" },
      h("label", { for: "setting-theme" }, "Theme"),
      this.theme,
      h("span", { class: "settings-label" }, "Font size"),
      h("div", { class: "font-size" }, this.smaller, this.size, this.larger),
      h("label", { for: "setting-keymap" }, "Key bindings"),
      this.keymap,
    );
    this.menu.hidden = true;
    this.el = h("div", { class: "settings-wrap" }, this.button, this.menu);

    this.button.addEventListener("click", () => this.show(this.menu.hidden));
    document.addEventListener("click", (event) => {
      if (!this.menu.hidden && !(event.target instanceof Node && this.el.contains(event.target))) this.show(false);
    });
    this.menu.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        this.show(false);
        this.button.focus();
      }
    });
    this.theme.addEventListener("change", () => this.update({ theme: this.theme.value as ThemeChoice }));
    this.keymap.addEventListener("change", () => this.update({ keymap: this.keymap.value as KeymapMode }));
    this.smaller.addEventListener("click", () => this.stepFont(-1));
    this.larger.addEventListener("click", () => this.stepFont(1));
    this.render();
    followStoredTheme((theme) => target.setTheme(theme));
    target.setTheme(resolveTheme(this.settings.theme));
    target.setFontSize(this.settings.fontSize);
    if (this.settings.keymap !== "default") void target.setKeymap(this.settings.keymap);
  }

  get current(): Settings {
    return { ...this.settings };
  }

  stepFont(by: 1 | -1): void {
    this.update({ fontSize: clampFont(this.settings.fontSize + by) });
  }

  private show(open: boolean): void {
    this.menu.hidden = !open;
    this.button.setAttribute("aria-expanded", String(open));
  }

  private update(patch: Partial<Settings>): void {
    const before = this.settings;
    this.settings = { ...before, ...patch };
    saveSettings(this.settings);
    if (this.settings.theme !== before.theme) {
      const theme = resolveTheme(this.settings.theme);
      applyPageTheme(theme);
      this.target.setTheme(theme);
    }
    if (this.settings.fontSize !== before.fontSize) this.target.setFontSize(this.settings.fontSize);
    if (this.settings.keymap !== before.keymap) void this.target.setKeymap(this.settings.keymap);
    this.render();
  }

  private render(): void {
    this.theme.value = this.settings.theme;
    this.keymap.value = this.settings.keymap;
    this.size.value = `${this.settings.fontSize}px`;
    this.smaller.disabled = this.settings.fontSize <= MIN_FONT;
    this.larger.disabled = this.settings.fontSize >= MAX_FONT;
  }
}
