//! ucspi-tcp compatible network front: tcpserver, tcprules, tcprulescheck and tcp-env.
