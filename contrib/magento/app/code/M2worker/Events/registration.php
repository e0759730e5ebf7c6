<?php
/**
 * M2worker_Events: registers the module with Magento (MIT License).
 */
declare(strict_types=1);

use Magento\Framework\Component\ComponentRegistrar;

ComponentRegistrar::register(ComponentRegistrar::MODULE, 'M2worker_Events', __DIR__);
