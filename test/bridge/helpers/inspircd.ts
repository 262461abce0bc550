import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../helpers/homeserver.js';
import { Daemon, forgetDir, trackDir } from './daemon.js';
import type { IrcTestServer } from './ngircd.js';

/** Debian's inspircd and atheme-services packages put them here; `.ci/run` installs both. */
export const INSPIRCD_BIN = '/usr/sbin/inspircd';
export const ATHEME_BIN = '/usr/bin/atheme-services';
const MODULE_DIR = '/usr/lib/inspircd/modules';
const SERVICES = 'services.skjol.test';
const LINK_PASSWORD = 'skjol-link-password';

/** Why InspIRCd tests cannot run here (printed when they skip), or undefined. */
export function inspircdMissing(services = false): string | undefined {
  if (!existsSync(INSPIRCD_BIN)) return `${INSPIRCD_BIN} not found: apt-get install inspircd (.ci/run does)`;
  if (services && !existsSync(ATHEME_BIN)) return `${ATHEME_BIN} not found: apt-get install atheme-services (.ci/run does)`;
  return undefined;
}

export interface InspircdOptions {
  /** Connections allowed from one IP (InspIRCd's localmax/globalmax; its shipped default is 3). */
  connectionsPerIp?: number;
  /** Links Debian's atheme-services (NickServ + SaslServ with PLAIN and EXTERNAL). */
  services?: boolean;
  /** Offers IRCv3 message-tags (TAGMSG, client tags such as +typing) and msgid. */
  messageTags?: boolean;
  /** Also listen with TLS (asking for client certificates, so CertFP works) on another port. */
  tls?: boolean;
}

export interface InspircdServer extends IrcTestServer {
  /** The temp dir holding configs, certificates and logs. */
  dir: string;
}

function inspircdConfig(o: { dir: string; port: number; linkPort: number; perIp: number; tls?: { port: number; cert: string; key: string }; services: boolean; messageTags?: boolean }): string {
  const lines = [
    '<server id="001" name="irc.skjol.test" description="Skjol bridge test server" network="SkjolTest">',
    '<admin name="Skjol test suite" nick="skjol" email="nobody@skjol.test">',
    `<bind address="127.0.0.1" port="${o.port}" type="clients">`,
    // No hostname or ident look-ups (slow on a box without DNS), no fake lag: a bridge opens many connections.
    `<connect allow="*" timeout="60" threshold="1000" commandrate="1000000" fakelag="off" pingfreq="120" hardsendq="1048576" softsendq="65536" recvq="65536" localmax="${o.perIp}" globalmax="${o.perIp}" resolvehostnames="no" useident="no">`,
    `<path configdir="${o.dir}" datadir="${o.dir}" logdir="${o.dir}" moduledir="${MODULE_DIR}" runtimedir="${o.dir}">`,
    `<pid file="${join(o.dir, 'inspircd.pid')}">`,
    // As Debian's shipped inspircd.conf: the server itself prefixes user quit messages with "Quit: ".
    '<options prefixquit="Quit: " syntaxhints="no">',
    '<dns server="127.0.0.1" timeout="1">',
    '<module name="cap">',
    '<module name="ircv3">',
    '<module name="ircv3_echomessage">',
    `<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="${join(o.dir, 'inspircd.log')}">`,
  ];
  if (o.messageTags) lines.push('<module name="ircv3_ctctags">', '<module name="ircv3_msgid">');
  if (o.tls) {
    lines.push(
      '<module name="ssl_gnutls">',
      '<module name="sslinfo">',
      `<sslprofile name="clients" provider="gnutls" certfile="${o.tls.cert}" keyfile="${o.tls.key}" dhfile="" requestclientcert="yes" hash="sha256">`,
      `<bind address="127.0.0.1" port="${o.tls.port}" type="clients" sslprofile="clients">`,
    );
  }
  if (o.services) {
    lines.push(
      `<bind address="127.0.0.1" port="${o.linkPort}" type="servers">`,
      '<module name="spanningtree">',
      '<module name="services_account">',
      '<module name="sasl">',
      `<sasl target="${SERVICES}">`,
      `<link name="${SERVICES}" ipaddr="127.0.0.1" port="${o.linkPort}" allowmask="127.0.0.0/8" sendpass="${LINK_PASSWORD}" recvpass="${LINK_PASSWORD}">`,
      `<uline server="${SERVICES}" silent="yes">`,
    );
  }
  return `${lines.join('\n')}\n`;
}

function athemeConfig(linkPort: number): string {
  const modules = ['protocol/inspircd', 'backend/opensex', 'crypto/pbkdf2v2', 'nickserv/main', 'nickserv/identify', 'nickserv/register', 'nickserv/cert', 'saslserv/main', 'saslserv/plain', 'saslserv/external'];
  return `${modules.map((m) => `loadmodule "modules/${m}";`).join('\n')}
serverinfo {
  name = "${SERVICES}"; desc = "Skjol test services"; numeric = "00A"; recontime = 1; netname = "SkjolTest";
  hidehostsuffix = "users.skjol.test"; adminname = "skjol"; adminemail = "nobody@skjol.test"; registeremail = "nobody@skjol.test";
  loglevel = { error; info; admin; network; }; maxlogins = 5; maxusers = 50; mdlimit = 30; emaillimit = 10; emailtime = 300;
  auth = none; casemapping = rfc1459;
};
uplink "irc.skjol.test" { host = "127.0.0.1"; port = ${linkPort}; send_password = "${LINK_PASSWORD}"; receive_password = "${LINK_PASSWORD}"; };
nickserv { nick = "NickServ"; user = "NickServ"; host = "${SERVICES}"; real = "Nickname Services"; maxnicks = 5; expire = 30; };
saslserv { nick = "SaslServ"; user = "SaslServ"; host = "${SERVICES}"; real = "SASL Authentication Agent"; };
general { flood_msgs = 0; ratelimit_uses = 0; ratelimit_period = 0; commit_interval = 1; default_clone_allowed = 50; default_clone_warn = 40; uplink_sendq_limit = 1048576; language = "en"; immune_level = immune; };
`;
}

/** Starts a private InspIRCd 3 (and, with `services`, atheme linked to it) on loopback with its own config in a temp dir. */
export async function startInspircd(options: InspircdOptions = {}): Promise<InspircdServer> {
  const missing = inspircdMissing(options.services);
  if (missing) throw new Error(missing);
  const dir = mkdtempSync(join(tmpdir(), 'skjol-inspircd-'));
  trackDir(dir);
  const port = await freePort();
  const linkPort = await freePort();
  let tls: { port: number; cert: string; key: string } | undefined;
  if (options.tls) {
    tls = { port: await freePort(), cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-keyout', tls.key, '-out', tls.cert, '-days', '1', '-nodes', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  }
  const services = options.services ?? false;
  const configFile = join(dir, 'inspircd.conf');
  writeFileSync(configFile, inspircdConfig({ dir, port, linkPort, perIp: options.connectionsPerIp ?? 50, tls, services, messageTags: options.messageTags }));
  writeFileSync(join(dir, 'inspircd.motd'), 'Skjol bridge test server\n');
  // InspIRCd refuses to run as root unless told to (the test box may be root).
  const ircd = new Daemon('inspircd', INSPIRCD_BIN, ['--nofork', '--nopid', '--runasroot', `--config=${configFile}`], (l) => l.includes('is now running as'), port);
  let atheme: Daemon | undefined;
  if (services) {
    const athemeFile = join(dir, 'atheme.conf');
    writeFileSync(athemeFile, athemeConfig(linkPort));
    atheme = new Daemon('atheme', ATHEME_BIN, ['-n', '-c', athemeFile, '-D', dir, '-l', join(dir, 'atheme.log'), '-p', join(dir, 'atheme.pid')], (l) => l.includes('finished synching with uplink'));
  }
  let closed = false;
  const server: InspircdServer = {
    host: '127.0.0.1',
    port,
    serverName: 'irc.skjol.test',
    tlsPort: tls?.port,
    caFile: tls?.cert,
    dir,
    async start() {
      if (closed) throw new Error('inspircd test server was closed');
      await ircd.start();
      await atheme?.start();
    },
    async stop() {
      await atheme?.stop();
      await ircd.stop();
    },
    async restart() {
      await server.stop();
      await server.start();
    },
    async close() {
      await server.stop();
      closed = true;
      forgetDir(dir);
    },
  };
  try {
    await server.start();
  } catch (err) {
    await server.close();
    throw err;
  }
  return server;
}
