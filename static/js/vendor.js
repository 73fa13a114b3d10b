// The vendored libraries are classic UMD scripts that define window globals (the dashboard
// loads them before its modules); modules import them from here so each names what it uses.
export const echarts = window.echarts;
export const ace = window.ace;
export const jsyaml = window.jsyaml;
