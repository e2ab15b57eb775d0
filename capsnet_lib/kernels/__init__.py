"""Fast paths: the same numbers as the readable code, computed faster, chosen inside a module's forward.

- strided_conv: PrimaryCaps' 9x9 stride-2 convolution as four stride-1 convolutions where that is faster.
"""
