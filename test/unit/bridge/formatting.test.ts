import { describe, expect, it } from 'vitest';
import { ircToMatrix, matrixToIrc, stripIrcFormatting } from '../../../src/bridge/irc/formatting.js';

const html = (formatted_body: string) => ({ msgtype: 'm.text', body: 'fallback', format: 'org.matrix.custom.html', formatted_body });

describe('ircToMatrix', () => {
  it('leaves plain text without formatted_body', () => {
    expect(ircToMatrix('hello <world> & co')).toEqual({ body: 'hello <world> & co' });
  });

  it('omits formatted_body when the codes apply to no text', () => {
    expect(ircToMatrix('\x02\x02plain\x1D')).toEqual({ body: 'plain' });
    expect(ircToMatrix('\x16reverse\x16 only')).toEqual({ body: 'reverse only' });
  });

  it('maps bold, italic, underline, strikethrough and monospace', () => {
    const out = ircToMatrix('\x02b\x02 \x1Di\x1D \x1Fu\x1F \x1Es\x1E \x11m\x11');
    expect(out.body).toBe('b i u s m');
    expect(out.format).toBe('org.matrix.custom.html');
    expect(out.formatted_body).toBe('<strong>b</strong> <em>i</em> <u>u</u> <del>s</del> <code>m</code>');
  });

  it('keeps tags properly nested when toggles overlap', () => {
    expect(ircToMatrix('\x02bold \x1Dboth\x02 italic').formatted_body).toBe(
      '<strong>bold <em>both</em></strong><em> italic</em>',
    );
  });

  it('closes tags left open by unbalanced input', () => {
    expect(ircToMatrix('\x02\x1F\x0304open').formatted_body).toBe(
      '<font data-mx-color="#ff0000"><strong><u>open</u></strong></font>',
    );
  });

  it('converts mIRC colours with background and resets on a bare \\x03', () => {
    const out = ircToMatrix('\x0304,12red on blue\x03 plain');
    expect(out.body).toBe('red on blue plain');
    expect(out.formatted_body).toBe('<font data-mx-color="#ff0000" data-mx-bg-color="#0000fc">red on blue</font> plain');
  });

  it('uses the extended 99-colour palette and treats 99 as default', () => {
    expect(ircToMatrix('\x0352x').formatted_body).toBe('<font data-mx-color="#ff0000">x</font>');
    expect(ircToMatrix('\x0388x').formatted_body).toBe('<font data-mx-color="#000000">x</font>');
    expect(ircToMatrix('\x0398x').formatted_body).toBe('<font data-mx-color="#ffffff">x</font>');
    expect(ircToMatrix('\x0399x')).toEqual({ body: 'x' });
  });

  it('keeps the background when only the foreground changes', () => {
    expect(ircToMatrix('\x033,5a\x034b').formatted_body).toBe(
      '<font data-mx-color="#009300" data-mx-bg-color="#7f0000">a</font><font data-mx-color="#ff0000" data-mx-bg-color="#7f0000">b</font>',
    );
  });

  it('reads at most two colour digits, leaving the rest as text', () => {
    const out = ircToMatrix('\x03041234');
    expect(out.body).toBe('1234');
    expect(out.formatted_body).toBe('<font data-mx-color="#ff0000">1234</font>');
  });

  it('does not consume a comma after a bare \\x03', () => {
    expect(ircToMatrix('\x03,5x')).toEqual({ body: ',5x' });
    expect(ircToMatrix('\x034,x').body).toBe(',x');
  });

  it('converts \\x04 hex colours', () => {
    const out = ircToMatrix('\x04FF8800,000000hex\x04 plain');
    expect(out.body).toBe('hex plain');
    expect(out.formatted_body).toBe('<font data-mx-color="#ff8800" data-mx-bg-color="#000000">hex</font> plain');
  });

  it('resets everything on \\x0F', () => {
    expect(ircToMatrix('\x02\x1D\x0302a\x0Fb').formatted_body).toBe(
      '<font data-mx-color="#00007f"><strong><em>a</em></strong></font>b',
    );
  });

  it('HTML-escapes text in formatted_body but not in body', () => {
    const out = ircToMatrix('\x02<b>&"\'</b>');
    expect(out.body).toBe('<b>&"\'</b>');
    expect(out.formatted_body).toBe('<strong>&lt;b&gt;&amp;&quot;&#39;&lt;/b&gt;</strong>');
  });

  it('stripIrcFormatting removes every kind of code', () => {
    expect(stripIrcFormatting('\x02a\x1Db\x1Fc\x1Ed\x11e\x16f\x0Fg\x0304,05h\x03i\x04aabbccj')).toBe('abcdefghij');
  });
});

describe('matrixToIrc (HTML)', () => {
  it('maps inline formatting to IRC toggles', () => {
    expect(matrixToIrc(html('<b>b</b> <em>i</em> <u>u</u> <del>d</del> <s>s</s> <code>c</code>'))).toEqual([
      '\x02b\x02 \x1Di\x1D \x1Fu\x1F \x1Ed\x1E \x1Es\x1E \x11c\x11',
    ]);
  });

  it('does not toggle twice for nested identical styles', () => {
    expect(matrixToIrc(html('<b>a <strong>b</strong> c</b>'))).toEqual(['\x02a b c\x02']);
  });

  it('handles nested different styles', () => {
    expect(matrixToIrc(html('<b>bold <i>both</i></b> end'))).toEqual(['\x02bold \x1Dboth\x02\x1D end']);
  });

  it('renders links with their url unless text and url match', () => {
    expect(
      matrixToIrc(html('see <a href="https://example.com/x">this</a>, <a href="https://x.org">https://x.org</a> and <a href="http://foo.net/">foo.net</a>')),
    ).toEqual(['see this <https://example.com/x>, https://x.org and foo.net']);
  });

  it('renders mention pills as their text only, but keeps event permalinks', () => {
    expect(
      matrixToIrc(html('<a href="https://matrix.to/#/@bob:example.org">Bob</a>: look at <a href="https://matrix.to/#/!r:x/$ev">this</a>')),
    ).toEqual(['Bob: look at this <https://matrix.to/#/!r:x/$ev>']);
    expect(matrixToIrc(html('hi <a href="https://matrix.to/#/%40bob%3Aexample.org"></a>'))).toEqual(['hi @bob:example.org']);
  });

  it('drops the <mx-reply> fallback entirely', () => {
    const body =
      '<mx-reply><blockquote><a href="https://matrix.to/#/!r:x/$e">In reply to</a> <a href="https://matrix.to/#/@a:x">@a:x</a><br>original <b>text</b></blockquote></mx-reply>my answer';
    expect(matrixToIrc(html(body))).toEqual(['my answer']);
  });

  it('prefixes blockquote lines, including nested quotes', () => {
    expect(matrixToIrc(html('<blockquote><p>q1</p><p>q2 <b>b</b></p><blockquote>deep</blockquote></blockquote><p>after</p>'))).toEqual([
      '> q1',
      '> q2 \x02b\x02',
      '> > deep',
      'after',
    ]);
  });

  it('renders unordered, ordered (with start) and nested lists', () => {
    expect(matrixToIrc(html('<ul><li>one</li><li>two<ol start="3"><li>a</li><li><b>b</b></li></ol></li></ul><ol><li>x</li><li>y</li></ol>'))).toEqual([
      '• one',
      '• two',
      '  3. a',
      '  4. \x02b\x02',
      '1. x',
      '2. y',
    ]);
  });

  it('keeps <pre> lines, monospaced, without a trailing blank line', () => {
    expect(matrixToIrc(html('<p>code:</p><pre><code class="language-js">const a = 1;\n\n  foo();\n</code></pre><p>done</p>'))).toEqual([
      'code:',
      '\x11const a = 1;\x11',
      '',
      '\x11  foo();\x11',
      'done',
    ]);
  });

  it('turns br/p/div/headings into line breaks and bolds headings', () => {
    expect(matrixToIrc(html('<h1>Title</h1><p>para\n  one</p>\n<div>two<br>three<br><br><br>four</div>'))).toEqual([
      '\x02Title\x02',
      'para one',
      'two',
      'three',
      '',
      'four',
    ]);
  });

  it('closes formatting at a line break and reopens it on the next line', () => {
    expect(matrixToIrc(html('<b>one<br>two</b>'))).toEqual(['\x02one\x02', '\x02two\x02']);
  });

  it('renders images as alt text and src, custom emoji as their shortcode', () => {
    expect(matrixToIrc(html('<img src="mxc://x/pic" alt="a cat"> <img data-mx-emoticon src="mxc://x/e" alt=":blob:"> <img src="mxc://x/noalt">'))).toEqual([
      'a cat <mxc://x/pic> :blob: mxc://x/noalt',
    ]);
  });

  it('decodes entities and keeps text of unknown tags', () => {
    expect(matrixToIrc(html('<span data-mx-spoiler>a&amp;b &lt;c&gt; &quot;d&quot; &#x1F600;</span> <marquee>x</marquee>'))).toEqual([
      'a&b <c> "d" 😀 x',
    ]);
  });

  it('survives malformed HTML', () => {
    expect(matrixToIrc(html('<b>unclosed <i>deep'))).toEqual(['\x02unclosed \x1Ddeep\x02\x1D']);
    // A stray </p> is an empty paragraph in HTML, hence the break.
    expect(matrixToIrc(html('</i></b>text</p><<>><a href=>x'))).toEqual(['text', '<<>>x']);
    expect(() => matrixToIrc(html('<' + '<div>'.repeat(500) + '&#xZZ;'))).not.toThrow();
  });

  it('strips CTCP and NUL characters that would break the IRC line', () => {
    expect(matrixToIrc(html('\x01ACTION hax\x01\0'))).toEqual(['ACTION hax']);
  });

  it('falls back to body when formatted_body yields nothing', () => {
    expect(matrixToIrc({ body: 'plain', format: 'org.matrix.custom.html', formatted_body: '<p> </p>' })).toEqual(['plain']);
  });

  it('ignores formatted_body with another format or a non-string value', () => {
    expect(matrixToIrc({ body: 'plain', format: 'text/markdown', formatted_body: '<b>x</b>' })).toEqual(['plain']);
    expect(matrixToIrc({ body: 'plain', format: 'org.matrix.custom.html', formatted_body: 7 })).toEqual(['plain']);
  });
});

describe('matrixToIrc (plain body)', () => {
  it('splits on newlines, trims and collapses blank lines', () => {
    expect(matrixToIrc({ body: '\n\n  first  \r\nsecond\n\n\n\nthird\t\n\n' })).toEqual(['  first', 'second', '', 'third']);
  });

  it('returns nothing for a non-string body', () => {
    expect(matrixToIrc({ body: 42 })).toEqual([]);
    expect(matrixToIrc({})).toEqual([]);
  });

  it('strips the reply fallback when m.relates_to has m.in_reply_to', () => {
    const content = {
      body: '> <@a:example.org> hello\n> there\n\nmy reply',
      'm.relates_to': { 'm.in_reply_to': { event_id: '$x' } },
    };
    expect(matrixToIrc(content)).toEqual(['my reply']);
  });

  it('strips the reply fallback when told via options, and only then', () => {
    const content = { body: '> quoted\n\nanswer' };
    expect(matrixToIrc(content, { isReply: true })).toEqual(['answer']);
    expect(matrixToIrc(content)).toEqual(['> quoted', '', 'answer']);
  });

  it('keeps quotes not followed by a blank line even in replies', () => {
    expect(matrixToIrc({ body: '> not a fallback\nanswer' }, { isReply: true })).toEqual(['> not a fallback', 'answer']);
  });
});
