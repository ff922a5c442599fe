// A Stryker reporter that prints each mutant that survived or had no test as soon as it is known,
// instead of only at the end of a run (hours long for a whole file): the work of killing or
// justifying survivors can start while the run goes on. Used by stryker.config.mjs ('live').
import { declareClassPlugin, PluginKind } from '@stryker-mutator/api/plugin';

class LiveReporter {
  static inject = [];
  tested = 0;

  onMutantTested(result) {
    this.tested += 1;
    if (result.status !== 'Survived' && result.status !== 'NoCoverage') return;
    const { line, column } = result.location.start;
    const replacement = (result.replacement ?? '').replace(/\s+/g, ' ').slice(0, 160);
    console.log(`mutation live: #${this.tested} ${result.status} ${result.fileName}:${line}:${column} ${result.mutatorName}: ${replacement}`);
  }
}

export const strykerPlugins = [declareClassPlugin(PluginKind.Reporter, 'live', LiveReporter)];
