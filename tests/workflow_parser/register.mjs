// Installs json-hook.mjs before the parser is imported: node --import ./register.mjs parse.mjs
import { register } from "node:module";

register("./json-hook.mjs", import.meta.url);
