/* Loopback origins for h2tunnel-load: TCP echo, source, sink and UDP echo.
 *
 * Protocols (all byte counts are 8-byte big-endian):
 *   echo      reflects every byte; on the client's FIN it sends FIN after the last echoed byte.
 *   source    reads N, sends N bytes, then closes once the client has sent FIN.
 *   sink      reads N, reads N bytes, answers with the count received (8 bytes), then closes once
 *             the client has sent FIN (an early FIN gets the short count).
 *   udp-echo  reflects each datagram to its sender.
 * With --close-first the origin sends FIN as soon as its part is done (echo: after --msg bytes;
 * source: after the N bytes; sink: after its answer) and closes once that FIN is out.
 * Each of -t threads has its own loop and its own SO_REUSEPORT socket. */
#ifndef LOAD_ORIGIN_H
#define LOAD_ORIGIN_H

struct load_opts;

/* Runs the origin in |o| until SIGINT or SIGTERM. Returns 0 or a negative errno (after printing
 * why). Prints "origin KIND listening on ADDR:PORT" to stderr once every socket is bound. */
int origin_run(const struct load_opts *o);

#endif
