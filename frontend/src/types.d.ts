// esbuild loads stylesheets as text (build.mjs): the cards put them in their shadow roots.
declare module "*.css" {
  const text: string;
  export default text;
}
