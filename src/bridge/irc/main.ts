import '../../polyfills.js';
import { parseArgs } from 'node:util';
import { ConfigError } from '../../config/load.js';
import { loadBridgeConfig } from './config.js';
import { bridgeLogger, startIrcBridge } from './bridge.js';
import { writeRegistration } from './registration.js';

export const IRC_USAGE = `Usage: skjol bridge irc --config bridge.yaml [--generate-registration [--output FILE]]

  --config FILE              the bridge configuration (see bridge.example.yaml)
  --generate-registration    write the application service registration for the homeserver and exit
  --output FILE              where to write it (default: appservice.registration from the config)
`;

/** `skjol bridge irc …`: runs the bridge, or writes its registration file. */
export async function runIrcBridge(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string', short: 'c' },
      'generate-registration': { type: 'boolean', short: 'r', default: false },
      output: { type: 'string', short: 'o' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(IRC_USAGE);
    return;
  }
  if (!values.config) throw new ConfigError(`The IRC bridge needs --config FILE\n${IRC_USAGE}`);
  const config = loadBridgeConfig(values.config);
  if (values['generate-registration']) {
    const path = values.output ?? config.appservice.registration;
    writeRegistration(config, path);
    process.stdout.write(`Wrote ${path}. Add it to the homeserver's app_service_config_files and restart it.\n`);
    return;
  }
  const logger = bridgeLogger(config.log_level);
  const bridge = await startIrcBridge(config, logger);
  const stop = () => {
    logger.info('shutting down');
    void bridge.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
