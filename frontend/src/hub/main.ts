// The hub's dashboard (served by the hub at /, shown in Home Assistant through the app's
// ingress): defines its elements; index.html holds <edge-ems-hub>.

import { definePages } from "./app.ts";

definePages();
