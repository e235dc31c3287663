/// <reference types="vite/client" />
declare const __PYODIDE_BASE__: string;
