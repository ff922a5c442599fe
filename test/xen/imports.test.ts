/**
 * Local Xen support is a room of its own: it uses the disk-image writer but knows nothing of CDK or
 * AWS, and the construct (and so the package's jsii API) never imports it.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';

const libDir = path.join(__dirname, '..', '..', 'lib');

function importsOf(file: string): string[] {
  return ts.preProcessFile(fs.readFileSync(file, 'utf8'), true, true).importedFiles.map((imported) => imported.fileName);
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? sourceFiles(full) : entry.name.endsWith('.ts') ? [full] : [];
  });
}

test('lib/xen imports neither CDK, AWS, nor the construct', () => {
  const files = sourceFiles(path.join(libDir, 'xen'));
  expect(files.length).toBeGreaterThan(5);
  for (const file of files) {
    for (const imported of importsOf(file)) {
      expect({ file: path.relative(libDir, file), imported }).not.toEqual(
        expect.objectContaining({ imported: expect.stringMatching(/aws-cdk-lib|^constructs$|@aws-sdk|unikernel-ami|pv-grub|\.\.\/cli/) }),
      );
    }
  }
});

test('neither the construct nor the package index imports lib/xen', () => {
  const files = [path.join(libDir, 'index.ts'), ...sourceFiles(path.join(libDir, 'unikernel-ami'))];
  for (const file of files) {
    for (const imported of importsOf(file)) {
      expect({ file: path.relative(libDir, file), imported }).not.toEqual(expect.objectContaining({ imported: expect.stringMatching(/(^|\/)xen(\/|$)/) }));
    }
  }
});
