// The text/event-stream format, parsed from chunks as they arrive (tested by node: ui/src/test/).

// Split a chunked body into events; calls `dispatch` with {id, event, data} per event.
export function parser(dispatch) {
    let buf = '';
    let data = [];
    let id = null;
    let event = '';
    return chunk => {
        buf += chunk;
        let m;
        const re = /\r\n|\r|\n/;
        while ((m = re.exec(buf))) {
            /* a lone \r at the end may be half of \r\n: wait for more */
            if (m[0] === '\r' && m.index === buf.length - 1) {
                break;
            }
            const line = buf.slice(0, m.index);
            buf = buf.slice(m.index + m[0].length);
            if (line === '') {
                if (data.length) {
                    dispatch({ id, event: event || 'message', data: data.join('\n') });
                }
                data = [];
                event = '';
                continue;
            }
            if (line.startsWith(':')) {
                continue;
            }
            const c = line.indexOf(':');
            const field = c < 0 ? line : line.slice(0, c);
            let value = c < 0 ? '' : line.slice(c + 1);
            if (value.startsWith(' ')) {
                value = value.slice(1);
            }
            if (field === 'data') {
                data.push(value);
            } else if (field === 'id') {
                id = value;
            } else if (field === 'event') {
                event = value;
            }
        }
    };
}
