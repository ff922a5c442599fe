/**
 * The jsii side of the package, after `npm run build` (scripts/test-extended.sh runs it first): the
 * assembly holds the construct API and nothing of the handler contract; API.md is what jsii-docgen
 * makes of it; the README's snippets compile through jsii-rosetta in strict mode; and the bindings
 * jsii-pacmak generates are sound source: the Python byte-compiles with this machine's python3 and
 * the Java declares the construct class. (Running the bindings needs the jsii runtimes from PyPI,
 * Maven Central, NuGet and the Go proxy, which this machine cannot reach.)
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'node_modules', '.bin');

function run(command: string, args: readonly string[], cwd = ROOT) {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', maxBuffer: 256 * 2 ** 20 });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed (exit ${result.status}):\n${result.stdout}${result.stderr}`);
  }
  return result;
}

interface Assembly {
  readonly name: string;
  readonly types: { [fqn: string]: { kind: string; properties?: Array<{ name: string }> } };
  readonly targets: { [language: string]: unknown };
}

let work: string;
let assembly: Assembly;
beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'mua-jsii-'));
  assembly = JSON.parse(fs.readFileSync(path.join(ROOT, '.jsii'), 'utf8'));
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

test('the assembly is the construct API, with no type of the handler contract', () => {
  expect(Object.keys(assembly.types).sort()).toEqual([
    'BuildStrategy', 'BuildStrategyKind', 'DiskLayout', 'HelperInstanceBuildOptions', 'ImageSharing', 'KernelArchitecture',
    'MirageUnikernelAmi', 'MirageUnikernelAmiProps', 'PvGrubKernel', 'UnikernelInstancesOptions',
    'UnikernelKernel', 'UnikernelKernelBindOptions', 'UnikernelKernelConfig',
  ].map((name) => `mirage-unikernel-ami.${name}`));
  // The custom-resource properties (KernelBucket, Helper, ...) would appear as PascalCase members.
  const pascalCase = Object.entries(assembly.types).flatMap(([fqn, type]) =>
    (type.properties ?? []).filter((property) => /^[A-Z]/.test(property.name)).map((property) => `${fqn}.${property.name}`));
  expect(pascalCase).toEqual([]);
  expect(Object.keys(assembly.targets).sort()).toEqual(['dotnet', 'go', 'java', 'js', 'python']);
});

test('API.md is what jsii-docgen makes of the assembly (else run: npm run build && npm run docgen)', () => {
  const fresh = path.join(work, 'API.md');
  run(path.join(BIN, 'jsii-docgen'), ['--output', fresh]);
  const generated = fs.readFileSync(fresh, 'utf8');
  expect(generated).toContain('### MirageUnikernelAmi');
  expect(fs.readFileSync(path.join(ROOT, 'API.md'), 'utf8')).toBe(generated);
});

test('the README snippets compile through jsii-rosetta in strict mode, and translate to Python', () => {
  const tablet = path.join(work, 'readme.tabl.json');
  // No cache: every snippet is compiled now.
  run(path.join(BIN, 'jsii-rosetta'), ['extract', '--strict', '--cache-from', path.join(work, 'none.json'), '--cache-to', tablet, '.jsii']);
  const snippets = Object.values(JSON.parse(fs.readFileSync(tablet, 'utf8')).snippets) as Array<{ didCompile: boolean; translations: { [language: string]: { source: string } } }>;
  expect(snippets.length).toBeGreaterThan(0);
  expect(snippets.filter((snippet) => !snippet.didCompile)).toEqual([]);
  expect(snippets.map((snippet) => snippet.translations.python.source).join('\n')).toMatch(/MirageUnikernelAmi\(stack, "Hello",/);
});

describe('the bindings jsii-pacmak generates (--code-only)', () => {
  let out: string;
  beforeAll(() => {
    out = path.join(work, 'bindings');
    run(path.join(BIN, 'jsii-pacmak'), ['--code-only', '--targets', 'python', 'java', 'dotnet', 'go', '--outdir', out]);
  }, 20 * 60 * 1000);

  test('Python: the module byte-compiles with python3 and defines the construct', () => {
    const sources = path.join(out, 'python', 'src', 'mirage_unikernel_ami');
    run('python3', ['-m', 'compileall', '-q', sources]);
    expect(fs.readFileSync(path.join(sources, '__init__.py'), 'utf8')).toMatch(/^class MirageUnikernelAmi\(\s*_constructs_\w+\.Construct,/m);
  });

  test('Java: the construct class is declared, extending Construct', () => {
    const file = path.join(out, 'java', 'src', 'main', 'java', 'io', 'github', 'mirage_unikernel_ami', 'MirageUnikernelAmi.java');
    expect(fs.readFileSync(file, 'utf8')).toMatch(/public class MirageUnikernelAmi extends software\.constructs\.Construct/);
  });

  test('.NET and Go: the construct is generated', () => {
    expect(fs.readFileSync(path.join(out, 'dotnet', 'Mirage.UnikernelAmi', 'Mirage', 'UnikernelAmi', 'MirageUnikernelAmi.cs'), 'utf8'))
      .toMatch(/public class MirageUnikernelAmi : Constructs\.Construct/);
    expect(fs.readFileSync(path.join(out, 'go', 'mirageunikernelami', 'MirageUnikernelAmi.go'), 'utf8')).toMatch(/^type MirageUnikernelAmi interface/m);
  });
});

test('npm publish --dry-run is clean: no warning, the files the package declares', () => {
  // The build has run (scripts/test-extended.sh); provenance exists only in the CI service, so not here.
  const result = run('npm', ['publish', '--dry-run', '--ignore-scripts', '--json']);
  // Without credentials npm says the real publish would need a login: about this machine, not the package.
  const warnings = result.stderr.split('\n').filter((line) => /^npm warn/i.test(line) && !/requires you to be logged in/.test(line));
  expect(warnings).toEqual([]);
  const report = JSON.parse(result.stdout.slice(result.stdout.indexOf('{')));
  const files = (report.files ?? report['mirage-unikernel-ami']?.files) as Array<{ path: string }>;
  expect(files.map((file) => file.path)).toEqual(expect.arrayContaining(['.jsii', 'API.md', 'THIRD-PARTY-NOTICES', 'dist/bin/mirage-unikernel-ami.js']));
});
