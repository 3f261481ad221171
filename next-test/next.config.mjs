// One build folder per bundler, so both builds of the test can coexist.
export default { distDir: process.env.NEXT_DIST_DIR ?? ".next" };
